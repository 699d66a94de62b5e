"""What `export_tflite` would refuse, said when the model is wrapped.

`export_tflite` (with its default `require_int8=True`) refuses a file where a
CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op runs in float. The converter
makes such an op int8 only when its weights, its input and its output all
carry a fake-quantizer, and the quantization plan decides all three: a heavy
layer left out by `ignored_scopes`, an input reaching it through a layer with
no quantizer (ignored, or a model input with `quantize_inputs: false`), or an
output whose fused chain (conv + BatchNormalization + ReLU) ends in an
ignored layer. `float_heavy_layers(plan)` lists them from the plan alone, so
`create_compressed_model` warns before any training, with the layer and the
fix. It also says when export needs an argument the defaults lack (recurrent
layers need `batch_size=1`) and which layers TFLite runs in float whatever the
quantizers (CONV_3D has no int8 kernel).
"""

import logging

import keras

from tf_aat import _layer_rules as rules
from tf_aat._layer_rules import unwrap

logger = logging.getLogger("tf_aat")

# Weight kinds of the plan that TFLite runs as the ops export checks.
_HEAVY_KINDS = ("conv", "depthwise", "separable", "dense")


def _is_3d(layer):
    return isinstance(layer, (keras.layers.Conv3D,))


def float_heavy_layers(plan):
    """`[(layer name, reason, fix)]` for each heavy layer TFLite would run in float."""
    graph = plan.graph
    producer = {tensor: node for node in graph.nodes for tensor in node.outputs}
    consumers = graph.consumers()
    inputs = set(graph.inputs)
    key = plan.params.key_path
    quantized_output = plan._quantize_output
    split = plan._split

    rounded_by_consumer = getattr(plan, "_rounded_by_consumer", set())

    def has_quantizer(node):
        return (
            id(node.layer) in quantized_output
            or id(node.layer) in split
            or (id(node.layer) in rounded_by_consumer)
        )

    def unquantized_source(tensor, seen=()):
        """None when `tensor` reaches its consumer quantized, else the layer to blame."""
        if tensor in inputs and tensor not in producer:
            if plan.params.quantize_inputs:
                return None
            return (
                "the model input",
                f"{key}.quantize_inputs is false",
                f"set {key}.quantize_inputs to true",
            )
        node = producer.get(tensor)
        if node is None or tensor in seen:
            return None
        if has_quantizer(node):
            return None
        layer = unwrap(node.layer)
        if rules.rule_for(layer).keeps_input_scale and node.inputs:
            # No quantizer of its own: its int8 tensor is its input's.
            return unquantized_source(node.inputs[0], (*seen, tensor))
        return (layer.name, *_why_unquantized(plan, node))

    found = []
    for node in graph.nodes:
        layer = unwrap(node.layer)
        if not rules.is_layer(layer) or _is_3d(layer):
            continue
        kind = rules.rule_for(layer).quantization_kind(layer)
        if kind not in _HEAVY_KINDS:
            continue
        name = layer.name
        if id(layer) not in plan._weighted:
            found.append(
                (
                    name,
                    f"it is left out of quantization by {key}.ignored_scopes / target_scopes",
                    f"remove {name!r} from ignored_scopes (or add it to target_scopes)",
                )
            )
            continue
        for tensor in node.inputs[:1]:
            source = unquantized_source(tensor)
            if source is not None:
                blamed, why, fix = source
                found.append((name, f"its input from {blamed} has no quantizer: {why}", fix))
        end = _fused_end(node, consumers, has_quantizer, plan._fused)
        if end is not None:
            blamed = unwrap(end.layer)
            why, fix = _why_unquantized(plan, end)
            found.append(
                (
                    name,
                    f"its output, fused with {blamed.name} into one TFLite op, has no "
                    f"quantizer there: {why}",
                    fix,
                )
            )
    return found


def _fused_end(node, consumers, has_quantizer, fused):
    """None when the op's output is quantized; else the end of its fused chain."""
    while id(node.layer) in fused and node.outputs:
        readers = consumers.get(node.outputs[0], [])
        if len(readers) != 1:
            break
        node = readers[0]
    return None if has_quantizer(node) else node


def _why_unquantized(plan, node):
    layer = unwrap(node.layer)
    key = plan.params.key_path
    if not plan._selected(layer):
        return (
            f"{layer.name!r} is left out by {key}.ignored_scopes / target_scopes",
            f"remove {layer.name!r} from ignored_scopes (or add it to target_scopes)",
        )
    return (
        f"{layer.name!r} ({rules.operation_name(layer)}) outputs "
        f"{node.output_dtypes[0] if node.output_dtypes else 'no float tensor'}",
        "give the heavy layer a float input",
    )


def warn_before_export(plan):
    """Logs, on logger `tf_aat`, what `export_tflite` would refuse or need; returns the
    float heavy layers (see `float_heavy_layers`)."""
    found = float_heavy_layers(plan)
    for name, reason, fix in found:
        logger.warning(
            "Layer %r will run in float in TFLite: %s. export_tflite will refuse the model "
            "(its require_int8=True). To fix: %s; or export with require_int8=False to "
            "accept a float op.",
            name,
            reason,
            fix,
        )
    layers = {}
    for node in plan.graph.nodes:
        layer = unwrap(node.layer)
        if rules.is_layer(layer):
            layers.setdefault(id(layer), layer)
    recurrent = [layer.name for layer in layers.values() if isinstance(layer, keras.layers.RNN)]
    if recurrent:
        logger.warning(
            "Recurrent layers %s: their TFLite loop state needs a fixed batch size, so "
            "export with export_tflite(..., batch_size=1).",
            recurrent,
        )
    volumetric = [layer.name for layer in layers.values() if _is_3d(layer)]
    if volumetric:
        logger.warning(
            "Conv3D layers %s train with int8 weights and outputs, but TFLite has no int8 "
            "CONV_3D kernel: the exported file runs them in float between DEQUANTIZE and "
            "QUANTIZE ops (export_tflite accepts that).",
            volumetric,
        )
    return found
