"""Where fake-quantizers go: the placement that matches TFLite's fused int8 kernels.

TFLite runs `conv + bias + BatchNormalization + ReLU/ReLU6` as one int8 op
(the converter folds the BatchNormalization into the kernel and the
activation into the output clamp), so only the end of such a chain has an
int8 tensor, and only there may the Keras model round. The same holds for an
element-wise merge followed by a ReLU. Ops that keep the scale of their input
(max pooling, reshapes, padding, dropout) need no quantizer; every other op
output gets one, and so does each model input.
"""

import keras

from tf_aat import _algorithms, _graph
from tf_aat import _layer_rules as rules
from tf_aat._errors import ConfigError
from tf_aat._layer_rules import unwrap
from tf_aat._scopes import in_scope
from tf_aat.quantization._quantizers import (
    FIXED_OUTPUT_RANGES,
    ActivationQuantizer,
    FixedRangeQuantizer,
    WeightQuantizer,
)

_MERGES_WITH_ACTIVATION = (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply)
_MERGE_OPERATIONS = ("Add", "Subtract", "Multiply")  # keras.ops nodes TFLite fuses a ReLU into


_OPERATION_ACTIVATIONS = {
    "Softmax": "softmax",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "LogSoftmax": "log_softmax",
}


def _is_merge(layer):
    if rules.is_layer(layer):
        return isinstance(layer, _MERGES_WITH_ACTIVATION)
    return type(layer).__name__ in _MERGE_OPERATIONS


_FUSABLE_ACTIVATIONS = ("linear", "relu", "relu6")

# An activation quantizer keeps channels and maps 0 to (nearly) 0, and its int8
# tensor is the input's: pruning follows through it, and nothing re-quantizes it.
rules.register_layer_rule(ActivationQuantizer, rules.LayerRule("carry", keeps_input_scale=True))
rules.register_layer_rule(FixedRangeQuantizer, rules.LayerRule("carry", keeps_input_scale=True))


def _activation_name(layer):
    """The fused-activation name of `layer` ("linear", "relu", "relu6") or None."""
    if isinstance(layer, keras.layers.ReLU):
        plain = not layer.negative_slope and not layer.threshold
        if plain and layer.max_value is None:
            return "relu"
        if plain and layer.max_value is not None and float(layer.max_value) == 6.0:
            return "relu6"
        return None
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    name = getattr(activation, "__name__", str(activation))
    return name if name in _FUSABLE_ACTIVATIONS else None


def _output_activation_name(layer):
    """The activation computed by a standalone activation layer or Keras operation
    ("softmax", "relu", ...), which decides whether its output quantizer has a
    fixed range; None for other layers."""
    if isinstance(layer, keras.layers.Activation):
        return rules.activation_name(layer.activation)
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if not rules.is_layer(layer):
        return _OPERATION_ACTIVATIONS.get(type(layer).__name__)
    return None


def _fixed_range(layer):
    """True for a layer whose output quantizer has TFLite's fixed range (softmax, ...)."""
    return _output_activation_name(layer) in FIXED_OUTPUT_RANGES


def _is_activation_layer(layer):
    return isinstance(layer, (keras.layers.ReLU, keras.layers.Activation))


def node_dtype(node):
    """The dtype of a graph node's first output."""
    return node.output_dtypes[0] if getattr(node, "output_dtypes", None) else None


def _is_float(shape_dtype):
    return shape_dtype is None or "float" in str(shape_dtype)


class QuantizationPlan(_algorithms.CompressionPlan):
    """Weight quantizers and output quantizers for each layer of one model."""

    def __init__(self, model, params):
        self.params = params
        self.graph = _graph.flatten(model)
        self._weighted = {}  # id(layer) -> "conv" | "depthwise" | "dense"
        self._quantize_output = set()  # id(layer)
        # id(layer) -> its activation, for a weighted layer whose activation TFLite
        # runs as an op of its own (softmax, sigmoid, ...): split out and quantized.
        self._split = {}
        self.skipped = []  # (layer name, reason)
        self._analyse()

    # -- analysis --------------------------------------------------------
    def _selected(self, layer):
        return in_scope(layer.name, self.params.ignored_scopes, self.params.target_scopes)

    def _analyse(self):
        graph = self.graph
        consumers = graph.consumers()
        outputs = set(graph.outputs)
        calls = graph.calls_per_layer()

        def only_consumer(node):
            """The single node reading `node`'s output, if it is folded into `node`'s op."""
            if len(node.outputs) != 1 or node.outputs[0] in outputs:
                return None
            readers = consumers.get(node.outputs[0], [])
            if len(readers) != 1 or calls.get(id(readers[0].layer), 0) != 1:
                return None
            return readers[0]

        fused = set()  # id(layer) of layers whose output lives only inside a fused op
        for node in graph.nodes:
            layer = unwrap(node.layer)
            kind = self._weight_kind(layer)
            selected = self._selected(layer)
            if kind == "unsupported":
                self.skipped.append(
                    (layer.name, f"{type(layer).__name__} has no int8 QAT support in tf_aat")
                )
                kind = None
            elif kind is not None and selected:
                self._weighted[id(layer)] = kind
                if _activation_name(layer) is None and calls.get(id(layer), 0) == 1:
                    self._split[id(layer)] = layer.activation
            if kind is None and not _is_merge(layer):
                continue
            if calls.get(id(layer), 0) != 1:
                continue
            # Follow the chain TFLite fuses into one op.
            last = node
            activation = _activation_name(layer)
            if kind is not None and activation == "linear":
                reader = only_consumer(last)
                if reader is not None and isinstance(
                    unwrap(reader.layer), keras.layers.BatchNormalization
                ):
                    self._check_batch_norm(layer, kind, unwrap(reader.layer))
                    fused.add(id(last.layer))
                    last = reader
            if activation == "linear":
                reader = only_consumer(last)
                if (
                    reader is not None
                    and _is_activation_layer(unwrap(reader.layer))
                    and _activation_name(unwrap(reader.layer)) in ("relu", "relu6")
                ):
                    fused.add(id(last.layer))
        self._fused = fused
        for node in graph.nodes:
            layer = unwrap(node.layer)
            if id(node.layer) in fused or rules.rule_for(layer).keeps_input_scale:
                continue
            if not _is_float(node_dtype(node)):
                continue
            if not self._selected(layer):
                continue
            self._quantize_output.add(id(node.layer))
        self._share_concatenation_scales(consumers, outputs, calls)

    def _share_concatenation_scales(self, consumers, outputs, calls):
        """An input read only by a quantized concatenation is rounded once, by the
        concatenation's quantizer: TFLite gives such a producer the
        concatenation's output scale (its int8 CONCATENATION takes one scale), so
        a quantizer of the producer's own would round twice where TFLite rounds once."""
        self._rounded_by_consumer = set()
        producer = {tensor: node for node in self.graph.nodes for tensor in node.outputs}
        for node in self.graph.nodes:
            if rules.rule_for(unwrap(node.layer)).channels != "concatenate":
                continue
            if id(node.layer) not in self._quantize_output:
                continue
            for tensor in node.inputs:
                source = producer.get(tensor)
                if (
                    source is None
                    or tensor in outputs
                    or len(source.outputs) != 1
                    or calls.get(id(source.layer), 0) != 1
                    or id(source.layer) not in self._quantize_output
                    or id(source.layer) in self._split
                    or [id(r) for r in consumers.get(tensor, [])] != [id(node)]
                    or _fixed_range(unwrap(source.layer))
                ):
                    continue
                self._quantize_output.discard(id(source.layer))
                self._rounded_by_consumer.add(id(source.layer))

    def _weight_kind(self, layer):
        """ "conv", "depthwise", "separable", "dense", "unsupported" or None, from its rule."""
        if not rules.is_layer(layer):
            return None
        return rules.rule_for(layer).quantization_kind(layer)

    def _check_batch_norm(self, layer, kind, batch_norm):
        key = self.params.key_path
        if kind == "dense":
            raise ConfigError(
                f"{key}.ignored_scopes",
                f"Dense layer {layer.name!r} not followed by a BatchNormalization "
                f"({batch_norm.name!r}): the converter cannot fold it into a per-tensor "
                "quantized FULLY_CONNECTED kernel, so TFLite would run something else",
                list(self.params.ignored_scopes),
                f"Add {layer.name!r} to `ignored_scopes` or fold the BatchNormalization into "
                "the Dense layer before compression.",
            )
        if not self.params.weights.per_channel:
            raise ConfigError(
                f"{key}.weights.per_channel",
                f"true for {layer.name!r}, which is followed by BatchNormalization "
                f"{batch_norm.name!r}: TFLite folds the BatchNormalization scale into the "
                "kernel per channel, and only per-channel weight ranges survive that exactly",
                False,
                "Remove `per_channel` (TFLite's default is per-channel) or ignore the layer.",
            )

    # -- what create_compressed_model asks for ------------------------------
    def weight_quantizers(self, layer):
        """New weight quantizers for the original `layer` (empty if it is not quantized)."""
        kind = self._weighted.get(id(layer))
        if kind is None:
            return {}
        per_channel = self.params.weights.per_channel and kind != "dense"
        if kind == "separable":
            # TFLite runs it as DEPTHWISE_CONV_2D then a 1x1 CONV_2D, each with its own kernel.
            return {
                "depthwise_kernel": WeightQuantizer(per_channel=per_channel, channel_axes=(-2, -1)),
                "pointwise_kernel": WeightQuantizer(per_channel=per_channel),
            }
        axes = (-2, -1) if kind == "depthwise" else (-1,)
        return {"kernel": WeightQuantizer(per_channel=per_channel, channel_axes=axes)}

    def intermediate_quantizer(self, layer):
        """The quantizer of a separable conv's depthwise result (None for other layers)."""
        if self._weighted.get(id(layer)) != "separable":
            return None
        return self._activation_quantizer(f"{layer.name}_depthwise_quantizer")

    def adapt_copy(self, layer, new):
        """A weighted layer whose activation TFLite runs as its own op is copied
        without it: the activation follows as a layer (see `layers_after`)."""
        if id(layer) not in self._split:
            return new
        config = new.get_config()
        config["activation"] = "linear"
        return type(new).from_config(config)

    def layers_after(self, layer):
        """Layers inserted after the output of the original `layer`."""
        if id(layer) in self._split:
            activation = self._split[id(layer)]
            name = rules.activation_name(activation)
            return [
                self._activation_quantizer(f"{layer.name}_preactivation_quantizer"),
                keras.layers.Activation(activation, name=f"{layer.name}_{name}"),
                self._output_quantizer(f"{layer.name}_quantizer", name),
            ]
        if id(layer) not in self._quantize_output:
            return []
        name = _output_activation_name(layer)
        return [self._output_quantizer(f"{layer.name}_quantizer", name)]

    def _output_quantizer(self, name, activation=None):
        """The quantizer of an op's output: fixed where TFLite fixes it."""
        if activation in FIXED_OUTPUT_RANGES:
            low, high = FIXED_OUTPUT_RANGES[activation]
            return FixedRangeQuantizer(low, high, name=name)
        return self._activation_quantizer(name)

    def input_layers(self, tensor):
        """Layers applied to a model input first (the input quantizer)."""
        if not self.params.quantize_inputs or not _is_float(tensor.dtype):
            return []
        history = getattr(tensor, "_keras_history", None)
        name = history[0].name if history else "input"
        return [self._activation_quantizer(f"{name}_quantizer")]

    def _activation_quantizer(self, name):
        symmetric = self.params.activations.mode == "symmetric"
        return ActivationQuantizer(symmetric=symmetric, name=name)

    def make_controller(self, compressed_model, init_data):
        """The `QuantizationController` of `compressed_model`.

        Args:
            compressed_model: the model `create_compressed_model` built from this plan.
            init_data: data to initialise the activation ranges from (then BN
                adaptation), or None to keep the initial ranges.

        Returns:
            The controller, initialised when `init_data` is given.
        """
        from tf_aat.quantization._controller import QuantizationController
        from tf_aat.quantization._refusals import warn_before_export

        warn_before_export(self)
        controller = QuantizationController(compressed_model, self.params, skipped=self.skipped)
        if init_data is not None:
            controller.initialize(init_data)
        return controller


def quantization_plan(model, params):
    """The quantizers `create_compressed_model` inserts into `model` for `params`."""
    return QuantizationPlan(model, params)
