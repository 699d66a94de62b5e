"""Post-training int8 quantization: what a user would pick instead of QAT.

Both start from the trained float Keras model and calibrate on the same images:

- `converter_ptq`: the TFLite converter's full-integer post-training
  quantization (`tf_aat.export_tflite` of the float model with
  `representative_data`: `Optimize.DEFAULT` and a representative dataset; float
  input and output, as the QAT file has);
- `ai_edge_ptq`: AI Edge Quantizer (`ai-edge-quantizer`, the `ptq` extra) with
  its static int8 recipe (`static_wi8_ai8`: per-channel int8 weights, int8
  activations from min/max calibration), applied to the float file of the
  model's SavedModel signature; its input and output are int8.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

import tf_aat

AI_EDGE_MISSING = (
    "ai-edge-quantizer is not installed: `pip install ai-edge-quantizer` (or the `ptq` extra, "
    '`pip install -e ".[ptq]"`) adds the AI Edge Quantizer row'
)


def ai_edge_quantizer_version():
    """The installed ai-edge-quantizer's version, or None when it is not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        import ai_edge_quantizer  # noqa: F401
    except ImportError:
        return None
    try:
        return version("ai-edge-quantizer")
    except PackageNotFoundError:  # pragma: no cover - imported but not from a wheel
        return "unknown"


def converter_ptq(model, calibration, path):
    """The TFLite converter's full-integer PTQ of the float `model`, calibrated on
    every image of `calibration`, written to `path` (batch 1). Returns the report."""
    return tf_aat.export_tflite(
        model,
        path,
        representative_data=calibration,
        num_representative_samples=len(calibration),
        batch_size=1,
    )


def float_file_with_signature(model, path):
    """A float TFLite file of `model` (batch 1) with a `serving_default` signature,
    which AI Edge Quantizer's calibration addresses inputs by."""
    directory = tempfile.mkdtemp()
    try:
        spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)
        model.export(directory, format="tf_saved_model", verbose=False, input_signature=[spec])
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(directory).convert()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path


def ai_edge_ptq(model, calibration, path):
    """AI Edge Quantizer's static int8 PTQ of the float `model`, calibrated on every
    image of `calibration` one at a time, written to `path`. Needs ai-edge-quantizer."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    float_path = os.path.splitext(path)[0] + "_float.tflite"
    float_file_with_signature(model, float_path)
    signatures = Interpreter(model_path=float_path).get_signature_list()
    (signature,) = signatures
    (input_name,) = signatures[signature]["inputs"]
    samples = [{input_name: np.asarray(image[None], np.float32)} for image in calibration]
    quantization = quantizer.Quantizer(float_path, recipe.static_wi8_ai8())
    result = quantization.quantize(
        quantization.calibrate({signature: samples}), enable_progress_report=False
    )
    result.export_model(path, overwrite=True)
    os.remove(float_path)
    return path
