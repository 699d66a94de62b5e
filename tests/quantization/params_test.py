"""Quantization config: TFLite's int8 defaults, and errors that say why a setting cannot deploy."""

import pytest

import tf_aat
from tests.quantization import models
from tf_aat._errors import ConfigError


def _config(**section):
    return tf_aat.CompressionConfig.from_dict(
        {"compression": {"algorithm": "quantization", **section}}
    )


def test_defaults_follow_tflite_int8_spec():
    params = _config().algorithm("quantization")
    assert params.weights.mode == "symmetric" and params.weights.per_channel
    assert params.activations.mode == "asymmetric" and not params.activations.per_channel
    assert params.weights.bits == params.activations.bits == 8
    assert params.range_init.type == "mean_min_max"
    assert params.range_init.num_init_samples == 256


def test_full_nncf_section_is_read():
    params = _config(
        weights={"mode": "symmetric", "per_channel": True, "bits": 8},
        activations={"mode": "symmetric"},
        initializer={
            "range": {
                "num_init_samples": 32,
                "type": "percentile",
                "params": {"min_percentile": 1.0, "max_percentile": 99.0},
            },
            "batchnorm_adaptation": {"num_bn_adaptation_samples": 0},
        },
        ignored_scopes=["{re}.*logits"],
        accuracy_aware_training={
            "maximal_accuracy_degradation": 1.0,
            "initial_training_phase_epochs": 1,
            "patience_epochs": 1,
        },
    ).algorithm("quantization")
    assert params.activations.mode == "symmetric"
    assert params.range_init.type == "percentile"
    assert params.range_init.max_percentile == 99.0
    assert params.num_bn_adaptation_samples == 0
    assert params.ignored_scopes == ("{re}.*logits",)


@pytest.mark.parametrize(
    "section, match",
    [
        ({"weights": {"bits": 4}}, r"compression\.weights\.bits.*TFLite's integer kernels"),
        ({"activations": {"bits": 16}}, r"compression\.activations\.bits"),
        ({"weights": {"mode": "asymmetric"}}, r"zero point of weights at 0"),
        ({"activations": {"per_channel": True}}, r"one range per tensor"),
        ({"weights": {"mode": "affine"}}, r"'symmetric' or 'asymmetric'"),
        ({"weights": {"narrow_range": False}}, r"\[-127, 127\]"),
        ({"weigths": {}}, r"Did you mean `weights`"),
        ({"initializer": {"range": {"type": "minmax"}}}, r"initializer\.range\.type"),
        ({"initializer": {"range": {"num_init_sample": 4}}}, r"Did you mean `num_init_samples`"),
        (
            {"initializer": {"range": {"params": {"min_percentile": 99, "max_percentile": 1}}}},
            r"below max_percentile",
        ),
        ({"initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": -1}}}, r">= 0|\[0"),
        ({"ignored_scopes": 3}, r"layer-name pattern"),
    ],
)
def test_config_errors(section, match):
    with pytest.raises(ConfigError, match=match):
        _config(**section)


def test_per_tensor_weights_before_batch_norm_are_rejected():
    config = {"compression": {"algorithm": "quantization", "weights": {"per_channel": False}}}
    with pytest.raises(ConfigError, match=r"weights\.per_channel.*folds the BatchNormalization"):
        tf_aat.create_compressed_model(models.plain_cnn(), config)


def test_per_tensor_weights_without_batch_norm_are_fine():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    config = {"compression": {"algorithm": "quantization", "weights": {"per_channel": False}}}
    ctrl, _ = tf_aat.create_compressed_model(keras.Model(inputs, outputs), config)
    granularity = {row["granularity"] for row in ctrl.statistics().to_dict()["weights"]}
    assert granularity == {"per_tensor"}


def test_dense_before_batch_norm_is_rejected():
    import keras

    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, name="fc")(inputs)
    outputs = keras.layers.BatchNormalization()(x)
    with pytest.raises(ConfigError, match=r"ignored_scopes.*'fc'"):
        tf_aat.create_compressed_model(
            keras.Model(inputs, outputs), {"compression": {"algorithm": "quantization"}}
        )


@pytest.mark.parametrize(
    "preset, activations", [("performance", "symmetric"), ("mixed", "asymmetric")]
)
def test_nncf_presets_mean_what_they_meant(preset, activations):
    params = _config(preset=preset).algorithm("quantization")
    assert params.preset == preset
    assert params.weights.mode == "symmetric" and params.weights.per_channel
    assert params.activations.mode == activations and not params.activations.per_channel


def test_an_explicit_mode_wins_over_the_preset_and_bad_presets_are_named():
    params = _config(preset="performance", activations={"mode": "asymmetric"})
    assert params.algorithm("quantization").activations.mode == "asymmetric"
    with pytest.raises(ConfigError, match=r"compression\.preset`: expected one of"):
        _config(preset="accuracy")


def test_overflow_fix_is_accepted_and_said_to_do_nothing(caplog, monkeypatch):
    import logging

    from tf_aat import _fields

    monkeypatch.setattr(_fields, "_told", set())
    with caplog.at_level(logging.WARNING, "tf_aat"):
        params = _config(overflow_fix="enable").algorithm("quantization")
        _config(overflow_fix="first_layer_only")
    assert params.overflow_fix == "enable"
    assert caplog.text.count("no 7-bit weight overflow fix") == 1
    assert _config(overflow_fix="disable").algorithm("quantization").overflow_fix == "disable"
    with pytest.raises(ConfigError, match=r"overflow_fix`: expected one of \['enable'"):
        _config(overflow_fix=True)


def test_nan_quantization_values_are_refused():
    with pytest.raises(ConfigError, match=r"min_percentile`: expected a finite number"):
        _config(initializer={"range": {"type": "percentile", "params": {"min_percentile": NAN}}})


NAN = float("nan")


def test_nncf_disable_saturation_fix_is_accepted_and_checked():
    assert _config(disable_saturation_fix=True).algorithm("quantization") is not None
    with pytest.raises(ConfigError, match="disable_saturation_fix"):
        _config(disable_saturation_fix="yes")
