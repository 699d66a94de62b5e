"""Sparsity config sections: NNCF's keys and defaults, refused values, sample configs."""

import math
import pathlib

import pytest

import tf_aat
from tf_aat.sparsity import MagnitudeSparsityParams, RBSparsityParams

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "configs"


def _parse(section):
    return tf_aat.CompressionConfig.from_dict({"compression": section}).algorithms[0]


def test_nncf_defaults():
    magnitude = _parse({"algorithm": "magnitude_sparsity"})
    assert isinstance(magnitude, MagnitudeSparsityParams)
    assert (magnitude.schedule, magnitude.sparsity_init, magnitude.sparsity_target) == (
        "polynomial",
        0.0,
        0.5,
    )
    assert (magnitude.sparsity_target_epoch, magnitude.sparsity_freeze_epoch) == (90, 100)
    assert (magnitude.power, magnitude.concave, magnitude.mode) == (0.9, True, "global")
    assert magnitude.weight_importance == "normed_abs"
    rb = _parse({"algorithm": "rb_sparsity"})
    assert isinstance(rb, RBSparsityParams) and rb.schedule == "exponential"


@pytest.mark.parametrize(
    "section, path",
    [
        ({"algorithm": "magnitude_sparsity", "sparsity_int": 0.1}, "compression.sparsity_int"),
        (
            {"algorithm": "magnitude_sparsity", "params": {"sparsity_targte": 0.5}},
            "compression.params.sparsity_targte",
        ),
        (
            {"algorithm": "magnitude_sparsity", "params": {"sparsity_target": math.nan}},
            "compression.params.sparsity_target",
        ),
        (
            {"algorithm": "magnitude_sparsity", "params": {"sparsity_target": 1.0}},
            "compression.params.sparsity_target",
        ),
        (
            {"algorithm": "rb_sparsity", "params": {"schedule": "cosine"}},
            "compression.params.schedule",
        ),
        (
            {"algorithm": "magnitude_sparsity", "params": {"sparsity_level_setting_mode": "x"}},
            "compression.params.sparsity_level_setting_mode",
        ),
        (
            {"algorithm": "magnitude_sparsity", "params": {"weight_importance": "l2"}},
            "compression.params.weight_importance",
        ),
        (
            {
                "algorithm": "magnitude_sparsity",
                "params": {
                    "schedule": "multistep",
                    "multistep_steps": [2],
                    "multistep_sparsity_levels": [0.1, 0.2, 0.3],
                },
            },
            "compression.params.multistep_sparsity_levels",
        ),
        (
            {"algorithm": "magnitude_sparsity", "params": {"sparsity_target_epoch": 2.5}},
            "compression.params.sparsity_target_epoch",
        ),
        (
            {
                "algorithm": "magnitude_sparsity",
                "params": {"schedule": "exponential", "update_per_optimizer_step": True},
            },
            "compression.params.update_per_optimizer_step",
        ),
        ({"algorithm": "rb_sparsity", "sparsity_init": -0.1}, "compression.sparsity_init"),
    ],
)
def test_bad_values_name_the_key_path(section, path):
    with pytest.raises(tf_aat.ConfigError) as info:
        _parse(section)
    assert info.value.key_path == path
    assert "Received" in str(info.value)


def test_typo_gets_the_closest_key():
    with pytest.raises(tf_aat.ConfigError, match="Did you mean `sparsity_target`"):
        _parse({"algorithm": "rb_sparsity", "params": {"sparsity_targte": 0.5}})


def test_magnitude_sample_config_loads_and_means_what_nncf_meant():
    config = tf_aat.CompressionConfig.from_json(CONFIGS / "digits_magnitude_sparsity_int8.json")
    sparsity = config.algorithm("magnitude_sparsity")
    assert sparsity.schedule == "multistep"
    assert sparsity.multistep_steps == (2, 4, 6, 8, 10)
    assert sparsity.target == 0.35 and sparsity.sparsity_freeze_epoch == 12
    assert sparsity.mode == "global" and sparsity.weight_importance == "normed_abs"
    quantization = config.algorithm("quantization")
    assert quantization.weights.per_channel and quantization.weights.mode == "symmetric"
    assert quantization.activations.mode == "asymmetric"


def test_rb_sample_config_loads_and_means_what_nncf_meant():
    config = tf_aat.CompressionConfig.from_json(CONFIGS / "digits_rb_sparsity_int8.json")
    sparsity = config.algorithm("rb_sparsity")
    assert sparsity.sparsity_init == 0.01
    assert sparsity.multistep_sparsity_levels[0] == 0.1 and sparsity.target == 0.42
    assert sparsity.sparsity_freeze_epoch == 12
    assert config.algorithm("quantization") is not None
    assert config.get("batch_size") == 16


def test_nncf_resnet50_accuracy_aware_sample_section_loads():
    # NNCF's only published TF accuracy-aware sparsity config (its compression
    # and search sections, verbatim).
    config = tf_aat.CompressionConfig.from_dict(
        {
            "accuracy_aware_training": {
                "mode": "adaptive_compression_level",
                "params": {
                    "maximal_relative_accuracy_degradation": 1.0,
                    "initial_training_phase_epochs": 100,
                    "patience_epochs": 40,
                },
            },
            "compression": {
                "algorithm": "magnitude_sparsity",
                "sparsity_init": 0.1,
                "params": {
                    "schedule": "multistep",
                    "multistep_steps": [5, 10, 15, 20, 25],
                    "multistep_sparsity_levels": [0.1, 0.15, 0.20, 0.25, 0.30, 0.35],
                },
            },
        }
    )
    assert config.algorithms[0].target == 0.35
    assert config.accuracy_aware_training is not None
