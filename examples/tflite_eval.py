"""Accuracy of a .tflite classifier with LiteRT (one image at a time, any input type)."""

import numpy as np


def _interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is in the examples extra
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def predict(path, x):
    interpreter = _interpreter(path)
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


def accuracy(path, x, y):
    return float(np.mean(np.argmax(predict(path, x), axis=-1) == y))
