"""Accuracy of a .tflite classifier with LiteRT (one image at a time, any input type)."""

import numpy as np


def _interpreter(path, builtin=False):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - LiteRT is in the examples extra
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
        OpResolverType = tf.lite.experimental.OpResolverType
    kwargs = {"num_threads": 1}
    if builtin:  # TFLite's builtin kernels only, without the default XNNPACK delegate
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=path, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def predict(path, x, builtin=False):
    """The float outputs of the .tflite file at `path` for the images `x`, one at a
    time; `builtin=True` runs TFLite's builtin kernels instead of XNNPACK."""
    interpreter = _interpreter(path, builtin)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    outputs = []
    for image in x:
        value = image[None]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            value = np.clip(np.round(value / scale + zero), -128, 127).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], value)
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"])[0].astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            result = (result - zero) * scale
        outputs.append(result)
    return np.stack(outputs)


def accuracy(path, x, y, builtin=False):
    """Top-1 accuracy of the .tflite classifier at `path` on `(x, y)`."""
    return float(np.mean(np.argmax(predict(path, x, builtin), axis=-1) == y))
