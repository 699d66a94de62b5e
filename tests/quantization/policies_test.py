"""QAT under the mixed_float16 policy, with a layer called twice, and on Conv3D."""

import keras
import numpy as np
import pytest

import tf_aat
from tf_aat._export import make_interpreter, run_tflite
from tf_aat.quantization import ActivationQuantizer

pytestmark = pytest.mark.onednn

CONFIG = {
    "compression": {
        "algorithm": "quantization",
        "preset": "mixed",
        "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
    }
}


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _images(shape, n=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _fit_one_step(model, x, y, loss):
    model.compile(keras.optimizers.SGD(0.01), loss)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_mixed_float16_qat_trains_and_exports_int8(mixed_float16, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3)(x))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    data = _images((8, 8, 3))
    config = {
        "compression": [
            {"algorithm": "filter_pruning", "pruning_init": 0.25},
            CONFIG["compression"],
        ]
    }
    ctrl, qat = tf_aat.create_compressed_model(model, config, init_data=data)
    conv = qat.layers[2]
    assert conv.compute_dtype == "float16"
    _fit_one_step(qat, data, np.zeros(len(data)), "sparse_categorical_crossentropy")
    expected = np.asarray(qat(data, training=False), "float32")
    stripped = ctrl.strip_model(qat)
    report = tf_aat.export_tflite(stripped, tmp_path / "m.tflite", verify_data=data)
    assert not report.float_ops
    assert report.verification["argmax_agreement"] == 1.0
    # The float32 file follows the float16 model within float16 rounding and a step.
    tflite = run_tflite(make_interpreter(model_path=report.path), [data])[0]
    assert np.max(np.abs(tflite - expected)) <= 2 * report.verification["quantization_step"]


def test_a_conv_called_twice_shares_one_output_quantizer(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    shared = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="shared")
    x = shared(shared(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    data = _images((8, 8, 4))
    _, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    quantizers = [layer for layer in qat.layers if isinstance(layer, ActivationQuantizer)]
    # One quantizer after the shared conv, called after both of its calls.
    assert sum(q.name.startswith("shared") for q in quantizers) == 1
    _fit_one_step(qat, data, np.zeros((len(data), 3)), "mse")
    report = tf_aat.export_tflite(qat, tmp_path / "m.tflite", verify_data=data)
    ops = [op.op for op in report.ops]
    assert ops.count("CONV_2D") == 2 and not report.float_ops
    assert report.verification["within_tolerance"] >= 0.99


def test_conv3d_trains_under_qat_and_exports(caplog, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6, 6, 2))
    x = keras.layers.Conv3D(4, 3, activation="relu", name="volume")(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    data = _images((4, 6, 6, 2))
    _, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    assert any("volume" in r.getMessage() and "CONV_3D" in r.getMessage() for r in caplog.records)
    _fit_one_step(qat, data, np.zeros((len(data), 3)), "mse")  # crashed in the gradient before
    kernel = qat.get_layer("volume")
    quantized = np.asarray(kernel.compressed_weight("kernel"))
    step = np.abs(quantized).reshape(-1, 4).max(0) / 127
    assert np.allclose(quantized / step, np.round(quantized / step), atol=1e-3)
    report = tf_aat.export_tflite(qat, tmp_path / "m.tflite", verify_data=data)
    assert "CONV_3D" in [op.op for op in report.ops]
    assert report.verification["within_tolerance"] >= 0.99


def test_a_dense_over_a_feature_map_with_a_bias_exports_int8(tmp_path):
    # ConvNeXt's pointwise convolutions: LayerNormalization then Dense on (h, w, c).
    # Keras computes it as reshape, MatMul, reshape, bias add; with a non-zero bias
    # (any trained one) the converter left FULLY_CONNECTED float.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.LayerNormalization()(keras.layers.Conv2D(8, 3)(inputs))
    x = keras.layers.Dense(16, activation="relu", bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Dense(8, name="pointwise")(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.get_layer("pointwise").bias.assign(np.linspace(-1, 1, 8).astype("float32"))
    data = _images((6, 6, 4))
    _, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    report = tf_aat.export_tflite(qat, tmp_path / "m.tflite", verify_data=data)
    assert [op.op for op in report.ops].count("FULLY_CONNECTED") == 3
    assert not report.float_ops
    assert report.verification["within_tolerance"] >= 0.99
