"""`export_tflite`: a QAT Keras model as an int8 TFLite flatbuffer, checked against Keras."""

import dataclasses
import itertools
import os
import warnings
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf
from keras import tree

from tf_aat.quantization import _data

# Ops whose int8 execution is the point of quantization-aware training.
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


class TFLiteExportError(ValueError):
    """The converted model is not what was asked for (not int8, or not faithful)."""


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:  # pragma: no cover - depends on the environment
        return tf.lite.Interpreter, "tf.lite"


def make_interpreter(model_content=None, model_path=None, num_threads=None, delegates=True):
    """A LiteRT interpreter (or `tf.lite.Interpreter` where LiteRT is missing).

    `delegates=False` runs TFLite's builtin kernels only, so the op list shows
    every op instead of the XNNPACK delegate that took them over.
    """
    interpreter_class, source = _interpreter_class()
    kwargs = {"num_threads": num_threads}
    if not delegates:
        module = __import__(
            "ai_edge_litert.interpreter" if source == "ai_edge_litert" else "tensorflow.lite",
            fromlist=["OpResolverType"],
        )
        if source != "ai_edge_litert":
            module = tf.lite.experimental
        kwargs["experimental_op_resolver_type"] = (
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    if model_content is not None:
        return interpreter_class(model_content=model_content, **kwargs)
    return interpreter_class(model_path=os.fspath(model_path), **kwargs)


@dataclasses.dataclass
class TFLiteOp:
    """One op of a TFLite model: its type and the dtypes of its inputs and output."""

    index: int
    op: str
    input_dtypes: list
    output_dtypes: list
    weight_dtype: str | None

    @property
    def is_int8(self):
        return (
            bool(self.input_dtypes)
            and self.input_dtypes[0] == "int8"
            and (self.weight_dtype in (None, "int8"))
        )


def tflite_ops(model):
    """Lists the ops of a TFLite model (a path or the flatbuffer bytes).

    Each `TFLiteOp` has the op type, the dtypes of its inputs and outputs and,
    for CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, the dtype of its
    weights. Example: `[op.op for op in tflite_ops("model.tflite") if not op.is_int8]`.
    """
    if isinstance(model, (bytes, bytearray)):
        interpreter = make_interpreter(model_content=bytes(model), delegates=False)
    else:
        interpreter = make_interpreter(model_path=model, delegates=False)
    interpreter.allocate_tensors()
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}

    def dtype(index):
        return np.dtype(tensors[index]["dtype"]).name if index in tensors else "unknown"

    ops = []
    for detail in interpreter._get_ops_details():
        inputs = [i for i in detail["inputs"] if i >= 0]
        weight = dtype(inputs[1]) if detail["op_name"] in INT8_OPS and len(inputs) > 1 else None
        ops.append(
            TFLiteOp(
                index=detail["index"],
                op=detail["op_name"],
                input_dtypes=[dtype(i) for i in inputs],
                output_dtypes=[dtype(i) for i in detail["outputs"] if i >= 0],
                weight_dtype=weight,
            )
        )
    return ops


@dataclasses.dataclass
class TFLiteExport:
    """What `export_tflite` wrote, and how closely it follows the Keras model."""

    path: str
    size_bytes: int
    ops: list
    verification: dict | None = None
    # Why LiteRT's default XNNPACK delegate cannot prepare the file (None: it can).
    delegate_error: str | None = None

    @property
    def float_ops(self):
        """Compute ops of `INT8_OPS` types that do not run in int8."""
        return [op for op in self.ops if op.op in INT8_OPS and not op.is_int8]

    def __str__(self):
        counts = {}
        for op in self.ops:
            counts[op.op] = counts.get(op.op, 0) + 1
        lines = [
            f"TFLite model {self.path} ({self.size_bytes:,} bytes)",
            "  ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())),
            f"  float {'/'.join(INT8_OPS)} ops: {len(self.float_ops)}",
        ]
        if self.verification:
            v = self.verification
            lines.append(
                f"  verified on {v['num_samples']} samples: argmax agreement "
                f"{100 * v['argmax_agreement']:.2f}%, within {v['tolerance_steps']:g} steps "
                f"{100 * v['within_tolerance']:.2f}%, max error {v['max_abs_error']:.5f} "
                f"(step {v['quantization_step']:.5f})"
            )
        return "\n".join(lines)


def _input_specs(model, batch_size, shapes):
    specs = []
    for tensor, shape in zip(model.inputs, shapes):
        specs.append(
            tf.TensorSpec((batch_size, *shape), tensor.dtype or "float32", name=_name(tensor))
        )
    return specs


def _name(tensor):
    return _data.input_name(tensor)


def _given_shapes(model, input_shape):
    """`input_shape` (one shape, a list of shapes or a dict by input name) as one per input."""
    names = [_name(t) for t in model.inputs]
    if input_shape is None:
        return [None] * len(names)
    if isinstance(input_shape, dict):
        unknown = sorted(set(input_shape) - set(names))
        if unknown:
            raise ValueError(
                f"Expected `input_shape` keys among the model's input names {names}. "
                f"Received: {unknown}"
            )
        return [input_shape.get(name) for name in names]
    shapes = list(input_shape)
    if all(d is None or isinstance(d, (int, np.integer)) for d in shapes):
        shapes = [shapes]  # one shape, for a single input
    if len(shapes) != len(names):
        raise ValueError(
            f"Expected `input_shape` to give one shape per model input {names} (without the "
            f"batch dimension). Received: input_shape={input_shape!r}"
        )
    return shapes


def _peek_inputs(model, data):
    """The first batch of `data` as one array per input, and `data` to read again in full."""
    if isinstance(data, Iterator):  # one-shot: put the element read back in front
        try:
            first = next(data)
        except StopIteration:
            return None, data
        data = itertools.chain([first], data)
        batches = _data.model_input_batches(iter([first]), model.inputs, 1)
    else:
        batches = _data.take_model_inputs(data, model.inputs, 1, batch_size=1)
    return next(iter(batches), None), data


def _resolve_shapes(model, input_shape, representative_data, verify_data):
    """One shape per model input without the batch dimension, every dimension known.

    Dimensions the model leaves unknown (`keras.Input((None, None, 3))`) come
    from `input_shape`, else from the first batch of `representative_data` or
    `verify_data`. Returns the shapes and the data (a one-shot iterator that was
    read is given back whole).
    """
    names = [_name(t) for t in model.inputs]
    shapes = []
    for tensor, name, given in zip(model.inputs, names, _given_shapes(model, input_shape)):
        own = tuple(tensor.shape[1:])
        if given is not None:
            given = tuple(given)
            if len(given) != len(own) or any(
                a is not None and b is not None and a != b for a, b in zip(own, given)
            ):
                raise ValueError(
                    f"Expected `input_shape` for input {name!r} to match its shape {own} "
                    f"(without the batch dimension). Received: {given}"
                )
            own = tuple(a if a is not None else b for a, b in zip(own, given))
        shapes.append(own)
    data = {"representative_data": representative_data, "verify_data": verify_data}
    for key in ("representative_data", "verify_data"):
        if all(None not in shape for shape in shapes) or data[key] is None:
            continue
        first, data[key] = _peek_inputs(model, data[key])
        if first is None:
            continue
        for i, (shape, array) in enumerate(zip(shapes, first)):
            if len(array.shape) - 1 != len(shape):
                raise ValueError(
                    f"Expected `{key}` for input {names[i]!r} to have samples of rank "
                    f"{len(shape)} like its shape {shape}. Received: a batch of shape "
                    f"{tuple(array.shape)}"
                )
            shapes[i] = tuple(
                a if a is not None else int(b) for a, b in zip(shape, array.shape[1:])
            )
    unknown = [(n, s) for n, s in zip(names, shapes) if None in s]
    if unknown:
        raise ValueError(
            "Expected every dimension of the model's inputs but the batch to be known: a TFLite "
            "model needs them to allocate its tensors. Pass `input_shape=` (without the batch "
            "dimension, e.g. input_shape=(224, 224, 3); a list or a dict by input name for "
            "several inputs), or `representative_data` / `verify_data`, whose first batch gives "
            f"them. Received: unknown dimensions (None) in {unknown}"
        )
    return shapes, data["representative_data"], data["verify_data"]


def _frozen_function(model, batch_size, shapes):
    # The converter only reads FakeQuant ranges that are constants, so variables are frozen.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = _input_specs(model, batch_size, shapes)
    single = len(specs) == 1

    @tf.function(input_signature=specs)
    def serve(*inputs):
        outputs = model(inputs[0] if single else list(inputs), training=False)
        return outputs

    return convert_variables_to_constants_v2(serve.get_concrete_function())


def _representative(model, data, num_samples):
    def generator():
        for batch in _data.take_model_inputs(data, model.inputs, num_samples, batch_size=1):
            for i in range(len(batch[0])):
                yield [np.asarray(a[i : i + 1], "float32") for a in batch]

    return generator


def export_tflite(
    model,
    path,
    representative_data=None,
    int8_io=False,
    verify_data=None,
    *,
    batch_size=None,
    input_shape=None,
    num_representative_samples=100,
    num_verify_samples=1000,
    require_int8=True,
    min_argmax_agreement=0.99,
    tolerance_steps=2.0,
    min_within_tolerance=0.99,
    raise_on_mismatch=True,
    quantize=True,
    sparse_weights=False,
):
    """Converts a quantization-aware Keras model to an int8 TFLite file.

    The fake-quantizers' ranges become the int8 scales and zero points, so the
    file computes what the Keras model simulated. Works on the model from
    `create_compressed_model` and on `ctrl.strip_model(...)` (pruned filters
    removed), also after a `.keras` save and load.

    Args:
        model: the Keras model (single or multiple inputs). Pruned filters
            still in it are removed first (`tf_aat.strip_model`); a model under
            a mixed-precision policy ("mixed_float16") is converted, and
            verified, as its float32 copy with the same weights.
        path: where to write the `.tflite` file.
        representative_data: optional calibration inputs (any form
            `create_compressed_model`'s `init_data` takes) for tensors without a
            learned range; a QAT model needs none.
        int8_io: make the model's inputs and outputs int8 too (the caller then
            quantizes inputs with the input tensor's scale and zero point).
        verify_data: optional inputs to run through both models (the first
            `num_verify_samples` of them); the result goes into
            `TFLiteExport.verification`.
        batch_size: fixed batch size of the TFLite inputs (None: resizable).
            Recurrent layers (LSTM, GRU, RNN) need a fixed one: batch_size=1.
        input_shape: the input shape without the batch dimension, for models
            whose inputs leave dimensions unknown (`keras.Input((None, None, 3))`);
            a list, or a dict by input name, for several inputs. Without it
            the unknown dimensions come from the first batch of
            `representative_data` or `verify_data`; the TFLite model then has
            those fixed dimensions.
        num_representative_samples: samples read from `representative_data`.
        num_verify_samples: at most this many samples (default 1000) are read
            from `verify_data`, so an endless dataset (`.repeat()`) is fine.

    Data for a model with several inputs may come in Keras's forms: a list or
    tuple of arrays (one per input), a dict keyed by input name, or a dataset
    yielding either (with or without labels, e.g. `((a, b), y)`).
        require_int8: raise if a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
            op is not int8.
        min_argmax_agreement, tolerance_steps, min_within_tolerance: the
            verification passes when the argmax of the last axis agrees on at
            least `min_argmax_agreement` of the samples and at least
            `min_within_tolerance` of the output values are within
            `tolerance_steps` quantization steps of the output.
        raise_on_mismatch: raise `TFLiteExportError` when verification fails
            (otherwise only report it).
        quantize: False writes a plain float model (a baseline to compare
            with); `require_int8` is then ignored.
        sparse_weights: store the weights in TFLite's sparse format
            (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`), for a model with
            sparsity: the file gets smaller once most weights are zero (ResNet-20
            int8: 0.76x the dense file at 70% zeros, 0.41x at 90%, but 1.10x at
            50%; see the sparsity deployment benchmark). A DENSIFY op expands
            them when the interpreter prepares the model, so inference runs the
            dense kernels and is not faster. Where LiteRT's default XNNPACK
            delegate cannot prepare the file, a warning says so and
            `TFLiteExport.delegate_error` holds the reason.

    Returns:
        A `TFLiteExport` with the path, the file size, the op list and the
        verification figures.

    Example:

    ```python
    ctrl, qat_model = tf_aat.create_compressed_model(model, config, init_data=x_train)
    qat_model.fit(x_train, y_train, epochs=1)
    report = tf_aat.export_tflite(qat_model, "model.tflite", verify_data=x_test)
    print(report)
    ```
    """
    path = os.fspath(path)
    from tf_aat import _algorithms

    model = _algorithms.before_export(model)  # e.g. pruned filters removed first
    model = float32_model(model)
    shapes, representative_data, verify_data = _resolve_shapes(
        model, input_shape, representative_data, verify_data
    )
    function = _frozen_function(model, batch_size, shapes)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if sparse_weights:
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if not quantize:
        require_int8 = int8_io = False
    if quantize and representative_data is not None:
        converter.representative_dataset = _representative(
            model, representative_data, num_representative_samples
        )
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # A QAT graph carries its input range in its first FakeQuant; nothing is missing.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            flatbuffer = converter.convert()
        except Exception as error:
            _raise_with_hint(error, model, batch_size)
            raise
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    report = TFLiteExport(path=path, size_bytes=len(flatbuffer), ops=tflite_ops(flatbuffer))
    if require_int8 and report.float_ops:
        raise TFLiteExportError(
            "Expected every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED op to run in int8. "
            "Layers without a learned range (ignored by the config, or of a type tf_aat does not "
            "quantize) stay float; quantize them, pass `representative_data`, or pass "
            f"require_int8=False. Received: float ops={[(o.op, o.input_dtypes) for o in report.float_ops]}"
        )
    if sparse_weights:
        report.delegate_error = _delegate_error(flatbuffer)
    if report.delegate_error:
        warnings.warn(
            "LiteRT's default XNNPACK delegate cannot prepare this file with sparse weights "
            f"({report.delegate_error}); TFLite's builtin kernels run it. Run it with "
            "`Interpreter(..., experimental_op_resolver_type=OpResolverType."
            "BUILTIN_WITHOUT_DEFAULT_DELEGATES)`, or export with sparse_weights=False for a "
            "file the default interpreter runs.",
            stacklevel=2,
        )
    if verify_data is not None:
        report.verification = verify_tflite(
            model,
            flatbuffer,
            verify_data,
            tolerance_steps=tolerance_steps,
            num_samples=num_verify_samples,
            delegates=report.delegate_error is None,
        )
        v = report.verification
        failed = (
            v["argmax_agreement"] < min_argmax_agreement
            or v["within_tolerance"] < min_within_tolerance
        )
        v["passed"] = not failed
        if failed and raise_on_mismatch:
            raise TFLiteExportError(
                f"The TFLite model does not follow the Keras model closely enough (expected "
                f"argmax agreement >= {min_argmax_agreement} and >= {min_within_tolerance} of "
                f"values within {tolerance_steps} quantization steps). Received: {v}"
            )
    return report


def _delegate_error(flatbuffer):
    """The error of preparing the file with the default delegates, or None."""
    try:
        make_interpreter(model_content=flatbuffer).allocate_tensors()
    except RuntimeError as error:
        return " ".join(str(error).split())
    return None


_LOW_PRECISION = ("float16", "bfloat16")


def _low_precision(layer):
    policy = getattr(layer, "dtype_policy", None)
    return policy is not None and str(getattr(policy, "compute_dtype", "")) in _LOW_PRECISION


def _float32_config(value):
    """`value` (a layer config) with every mixed-precision dtype policy made float32."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and str(
            value.get("config", {}).get("name", "")
        ).startswith("mixed_"):
            return "float32"
        return {key: _float32_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_config(item) for item in value]
    return value


def float32_model(model):
    """`model` computing in float32: a copy where layers under a mixed-precision
    policy ("mixed_float16", "mixed_bfloat16") compute in float32, with the same
    weights (their variables are float32 already); `model` itself when none is.

    TFLite's int8 model runs int8 kernels between float32 quantize and dequantize
    ops, so `export_tflite` converts this copy: what the float16 model computes
    differs from it by float16 rounding only.
    """
    from tf_aat import _graph
    from tf_aat._copying import layer_from_config

    if not any(_low_precision(layer) for layer in _leaf_layers(model)):
        return model
    pending = []

    def replace(layer):
        new = layer_from_config(layer, _float32_config(layer.get_config()))
        pending.append((layer, new))
        return new

    copy = _graph.rebuild(model, replace)
    for old, new in pending:
        new.set_weights(old.get_weights())
    return copy


def _raise_with_hint(error, model, batch_size):
    """Re-raises a converter error with what fixes it, where that is known."""
    recurrent = [
        layer.name
        for layer in _leaf_layers(model)
        if isinstance(layer, keras.layers.RNN) or "rnn" in type(layer).__name__.lower()
    ]
    if batch_size is None and (recurrent or "TensorList" in str(error)):
        raise TFLiteExportError(
            "The TFLite converter failed on a model with recurrent layers "
            f"{recurrent or '(TensorList ops)'}: their loop state needs a static shape, so the "
            "batch size must be fixed. Pass batch_size=1 to `export_tflite` (the TFLite model "
            f"then takes one sample per call). Received: batch_size=None; converter error: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error


def _leaf_layers(model):
    seen, stack, leaves = set(), [model], []
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        leaves.append(layer)
        stack.extend(getattr(layer, "layers", []) or [])
        inner = getattr(layer, "layer", None)
        if isinstance(inner, keras.layers.Layer):
            stack.append(inner)
    return leaves


def _output_quantization(interpreter, int8_io):
    """(scale, zero_point) of the int8 tensor the model's first output comes from."""
    output = interpreter.get_output_details()[0]
    scale, zero_point = output["quantization"]
    if scale:
        return scale, zero_point
    # A float output is a DEQUANTIZE of the int8 result: read that tensor's parameters.
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    for detail in interpreter._get_ops_details():
        if output["index"] in detail["outputs"] and detail["op_name"] == "DEQUANTIZE":
            return tensors[detail["inputs"][0]]["quantization"]
    return 0.0, 0


def run_tflite(interpreter, inputs):
    """Runs `inputs` (one array per model input, any batch size) and returns the outputs."""
    details = interpreter.get_input_details()
    inputs = tree.flatten(inputs)
    for detail, array in zip(details, inputs):
        if tuple(detail["shape"]) != array.shape:
            interpreter.resize_tensor_input(detail["index"], array.shape)
    interpreter.allocate_tensors()
    for detail, array in zip(details, inputs):
        scale, zero_point = detail["quantization"]
        if detail["dtype"] == np.int8:
            array = np.clip(np.round(array / scale + zero_point), -128, 127)
        interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
    interpreter.invoke()
    outputs = []
    for detail in interpreter.get_output_details():
        value = interpreter.get_tensor(detail["index"])
        scale, zero_point = detail["quantization"]
        if detail["dtype"] == np.int8:
            value = (value.astype("float32") - zero_point) * scale
        outputs.append(value)
    return outputs


def verify_tflite(
    model,
    tflite_model,
    data,
    tolerance_steps=2.0,
    batch_size=64,
    num_samples=1000,
    delegates=True,
):
    """Compares the first output of `model` and of a TFLite model on the inputs of `data`.

    Reads at most `num_samples` samples of `data` (None: all of it, which an
    endless dataset never ends).

    Returns a dict: `num_samples`, `argmax_agreement` (fraction of samples
    whose argmax over the last axis agrees), `within_tolerance` (fraction of
    output values within `tolerance_steps` output quantization steps),
    `max_abs_error` and `quantization_step`. `delegates=False` runs TFLite's
    builtin kernels only.
    """
    if isinstance(tflite_model, (bytes, bytearray)):
        interpreter = make_interpreter(model_content=bytes(tflite_model), delegates=delegates)
    else:
        interpreter = make_interpreter(model_path=tflite_model, delegates=delegates)
    interpreter.allocate_tensors()
    int8_io = interpreter.get_output_details()[0]["dtype"] == np.int8
    step, _ = _output_quantization(interpreter, int8_io)
    fixed_batch = interpreter.get_input_details()[0]["shape_signature"][0] != -1
    keras_outputs, tflite_outputs = [], []
    if num_samples is None:
        batches = _data.model_input_batches(data, model.inputs, batch_size)
    else:
        batches = _data.take_model_inputs(data, model.inputs, num_samples, batch_size)
    for batch in batches:
        flat = [np.asarray(a, "float32") for a in batch]
        expected = tree.flatten(model(flat[0] if len(flat) == 1 else flat, training=False))[0]
        keras_outputs.append(keras.ops.convert_to_numpy(expected))
        if fixed_batch:
            rows = [
                run_tflite(interpreter, [a[i : i + 1] for a in flat])[0]
                for i in range(len(flat[0]))
            ]
            tflite_outputs.append(np.concatenate(rows))
        else:
            tflite_outputs.append(run_tflite(interpreter, flat)[0])
    expected = np.concatenate(keras_outputs).astype("float32")
    actual = np.concatenate(tflite_outputs).astype("float32").reshape(expected.shape)
    error = np.abs(expected - actual)
    tolerance = tolerance_steps * step + 1e-6 if step else 1e-3 * (np.abs(expected).max() + 1)
    agreement = (
        float(np.mean(expected.argmax(-1) == actual.argmax(-1))) if expected.ndim > 1 else 1.0
    )
    return {
        "num_samples": int(expected.shape[0]),
        "argmax_agreement": agreement,
        "within_tolerance": float(np.mean(error <= tolerance)),
        "tolerance_steps": float(tolerance_steps),
        "quantization_step": float(step),
        "max_abs_error": float(error.max()) if error.size else 0.0,
    }
