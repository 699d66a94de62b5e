"""What export_tflite would refuse is said by create_compressed_model, before training."""

import logging

import keras
import numpy as np
import pytest

import tf_aat
from tf_aat import _algorithms
from tf_aat._config import CompressionConfig
from tf_aat.quantization._refusals import float_heavy_layers

pytestmark = pytest.mark.onednn


def _config(**params):
    return {
        "compression": {
            "algorithm": "quantization",
            "preset": "mixed",
            "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
            **params,
        }
    }


def _model(middle=None):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    if middle is not None:
        x = middle(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


CASES = {
    "ignored dense": (None, {"ignored_scopes": ["head"]}, {"head"}),
    "ignored conv": (None, {"ignored_scopes": ["c2"]}, {"c2"}),
    # c1 + bn fuse into one CONV_2D whose output would be the ignored bn's.
    "ignored batch norm": (
        lambda x: keras.layers.BatchNormalization(name="bn")(x),
        {"ignored_scopes": ["bn"]},
        {"c1", "c2"},
    ),
    "ignored activation": (
        lambda x: keras.layers.Activation("gelu", name="act")(x),
        {"ignored_scopes": ["act"]},
        {"c2"},
    ),
    "unquantized input": (None, {"quantize_inputs": False}, {"c1"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_creation_warns_for_each_layer_export_then_refuses(case, caplog, tmp_path):
    middle, params, expected = CASES[case]
    keras.utils.set_random_seed(0)
    model = _model(middle)
    data = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    with caplog.at_level(logging.WARNING, logger="tf_aat"):
        _, qat = tf_aat.create_compressed_model(model, _config(**params), init_data=data)
    warned = {
        record.args[0]
        for record in caplog.records
        if record.getMessage().startswith("Layer ") and "run in float" in record.getMessage()
    }
    assert warned == expected
    message = next(r.getMessage() for r in caplog.records if "run in float" in r.getMessage())
    assert "To fix:" in message and "require_int8=False" in message
    # The prediction is what export finds: one float heavy op per warned layer.
    with pytest.raises(tf_aat.TFLiteExportError, match="int8"):
        tf_aat.export_tflite(qat, tmp_path / "m.tflite")
    report = tf_aat.export_tflite(qat, tmp_path / "m.tflite", require_int8=False)
    assert len(report.float_ops) == len(expected)


def test_a_model_that_exports_int8_gets_no_warning(caplog, tmp_path):
    keras.utils.set_random_seed(0)
    model = _model(lambda x: keras.layers.ReLU()(keras.layers.BatchNormalization()(x)))
    data = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    with caplog.at_level(logging.WARNING, logger="tf_aat"):
        _, qat = tf_aat.create_compressed_model(model, _config(), init_data=data)
    assert not [r for r in caplog.records if "TFLite" in r.getMessage()]
    assert not tf_aat.export_tflite(qat, tmp_path / "m.tflite").float_ops


def _plan(model, **params):
    (algorithm_params,) = CompressionConfig.from_dict(_config(**params)).algorithms
    return _algorithms.of_params(algorithm_params).plan(model, algorithm_params)


@pytest.mark.parametrize(
    "name", ["MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0", "ConvNeXtTiny"]
)
def test_keras_applications_with_default_heads_are_predicted_int8(name):
    # The zoo deployment benchmark exports these with every heavy op int8.
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3))
    assert float_heavy_layers(_plan(model)) == []
    # Ignoring the classifier is caught by name.
    head = model.layers[-1].name
    found = float_heavy_layers(_plan(model, ignored_scopes=[head]))
    assert [name for name, _, _ in found] == [head]
    keras.backend.clear_session()


def test_recurrent_layers_are_told_to_export_with_a_fixed_batch(caplog):
    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    data = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    with caplog.at_level(logging.WARNING, logger="tf_aat"):
        tf_aat.create_compressed_model(model, _config(), init_data=data)
    assert any(
        "lstm" in r.getMessage() and "batch_size=1" in r.getMessage() for r in caplog.records
    )
