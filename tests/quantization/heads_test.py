"""Classifier heads and Keras operations export all-int8 and faithful."""

import keras
import numpy as np
import pytest

import tf_aat
from tf_aat.quantization import FixedRangeQuantizer

pytestmark = pytest.mark.onednn

CONFIG = {
    "compression": {
        "algorithm": "quantization",
        "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
    }
}


def _images(n=32, size=12, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def _export(model, tmp_path, data):
    ctrl, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    report = tf_aat.export_tflite(
        ctrl.strip_model(qat), tmp_path / "model.tflite", verify_data=data
    )
    return qat, report


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "tanh"])
def test_a_dense_head_with_a_fixed_scale_activation_exports_int8(activation, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation=activation, name="head")(x)
    data = _images()
    qat, report = _export(keras.Model(inputs, outputs), tmp_path, data)
    # The activation left the Dense and rounds on TFLite's fixed output grid.
    assert qat.get_layer("head").layer.get_config()["activation"] == "linear"
    fixed = [layer for layer in qat.layers if isinstance(layer, FixedRangeQuantizer)]
    assert len(fixed) == 1
    assert not report.float_ops
    ops = {op.op for op in report.ops}
    assert {"softmax": "SOFTMAX", "sigmoid": "LOGISTIC", "tanh": "TANH"}[activation] in ops
    assert report.verification["within_tolerance"] >= 0.99


def test_a_separate_softmax_and_keras_operations_export_int8(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.ReLU()(x + y)  # a residual written with an operator
    gate = keras.ops.sigmoid(
        keras.layers.Conv2D(8, 1)(keras.ops.mean(x, axis=[1, 2], keepdims=True))
    )
    x = x * gate  # a squeeze-excite gate with operators
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)
    outputs = keras.layers.Activation("softmax")(x)
    data = _images()
    _, report = _export(keras.Model(inputs, outputs), tmp_path, data)
    assert not report.float_ops
    assert report.verification["argmax_agreement"] >= 0.95
    assert report.verification["within_tolerance"] >= 0.99


def test_mobilenet_v2_with_its_default_softmax_head_exports_int8(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    rng = np.random.default_rng(0)
    data = keras.applications.mobilenet_v2.preprocess_input(
        rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    )
    _, report = _export(model, tmp_path, data)
    assert not report.float_ops
    assert "SOFTMAX" in {op.op for op in report.ops}


def test_a_concatenation_rounds_its_inputs_once_as_tflite_does(tmp_path):
    # TFLite's CONCATENATION takes one scale: the converter gives the convs feeding
    # it the concatenation's scale, so their values are rounded once, on that grid.
    # Their own quantizers rounded them twice (own grid, then the concatenation's):
    # 0.3% of the values one step off.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    small = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="small")(inputs)
    wide = keras.layers.Conv2D(
        4,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=keras.initializers.RandomNormal(stddev=3.0),
    )(inputs)
    joined = keras.layers.Concatenate(name="joined")([small, wide])
    model = keras.Model(inputs, joined)
    data = _images(size=8)
    ctrl, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    names = [layer.name for layer in qat.layers]
    assert "small_quantizer" not in names and "joined_quantizer" in names
    report = tf_aat.export_tflite(qat, tmp_path / "model.tflite", verify_data=data)
    assert "QUANTIZE" not in [op.op for op in report.ops][1:]  # no requantization
    assert report.verification["max_abs_error"] == 0.0
