"""What a user gets from the stripped QAT model through LiteRT and Keras's own export:
a batch of images at once on several threads, and `model.export(format="litert")`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_aat
from tests.quantization import models

pytestmark = pytest.mark.onednn

HEAVY = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def deployable():
    """A pruned + int8 QAT CNN, stripped, with the images it is run on."""
    keras.utils.set_random_seed(0)
    model = models.plain_cnn()
    x = models.images(64)
    ctrl, qat = tf_aat.create_compressed_model(model, models.pruned_int8_config(), init_data=x[:32])
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, models.labels(64), epochs=1, batch_size=16, verbose=0)
    return ctrl.strip_model(qat), x


def _interpreter(path, threads=1):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=threads)


def _run(path, x, threads=1):
    interpreter = _interpreter(path, threads)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def test_a_batch_on_several_threads_gives_the_one_image_outputs(deployable, tmp_path):
    model, x = deployable
    path = tmp_path / "model.tflite"
    tf_aat.export_tflite(model, path)  # no batch_size: the batch dimension is resizable
    assert list(_interpreter(path).get_input_details()[0]["shape_signature"]) == [-1, 16, 16, 3]
    batch = _run(path, x[:20], threads=2)
    single = np.concatenate([_run(path, x[i : i + 1]) for i in range(20)])
    assert batch.shape == (20, 10)
    np.testing.assert_array_equal(batch, single)

    fixed = tmp_path / "fixed.tflite"
    tf_aat.export_tflite(model, fixed, batch_size=1)
    interpreter = _interpreter(fixed)
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [1, 16, 16, 3]


@pytest.mark.skipif(
    tuple(int(p) for p in keras.__version__.split(".")[:2]) < (3, 13),
    reason="model.export(format='litert') arrived in Keras 3.13",
)
def test_keras_litert_export_is_float_by_default_and_int8_with_the_optimization(
    deployable, tmp_path
):
    model, x = deployable
    int8 = tmp_path / "int8.tflite"
    tf_aat.export_tflite(model, int8)

    # Keras's default LiteRT file keeps the convolutions float and simulates each
    # quantizer with a QUANTIZE/DEQUANTIZE pair: the same outputs, none of the gain.
    default = tmp_path / "default.tflite"
    model.export(str(default), format="litert", verbose=False)
    ops = tf_aat.tflite_ops(default.read_bytes())
    heavy = [op for op in ops if op.op in HEAVY]
    assert heavy and not any(op.is_int8 for op in heavy)
    assert sum(op.op == "DEQUANTIZE" for op in ops) >= len(heavy)
    assert default.stat().st_size > 2 * int8.stat().st_size
    expected = _run(int8, x)
    int8_io = tmp_path / "int8_io.tflite"
    tf_aat.export_tflite(model, int8_io, int8_io=True)
    step = _interpreter(int8_io).get_output_details()[0]["quantization"][0]  # one output step
    outputs = _run(default, x)
    np.testing.assert_array_equal(np.argmax(outputs, -1), np.argmax(expected, -1))
    assert np.max(np.abs(outputs - expected)) <= 1.01 * step

    # With the converter's default optimization it is the int8 file export_tflite writes.
    optimized = tmp_path / "optimized.tflite"
    model.export(
        str(optimized), format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT]
    )
    heavy = [op for op in tf_aat.tflite_ops(optimized.read_bytes()) if op.op in HEAVY]
    assert heavy and all(op.is_int8 for op in heavy)
    np.testing.assert_allclose(_run(optimized, x), expected, atol=1e-6)
