import logging

import pytest

from tf_aat._errors import ConfigError
from tf_aat.accuracy_aware._params import (
    AccuracyAwareParams,
    find_accuracy_aware_section,
    parse_accuracy_aware_training,
)


def test_seed_layout_defaults():
    params = parse_accuracy_aware_training(
        {
            "maximal_accuracy_degradation": 1.0,
            "initial_training_phase_epochs": 100,
            "patience_epochs": 30,
        },
        "compression[0].accuracy_aware_training",
        "seed",
    )
    assert params.mode == "adaptive_compression_level"
    assert params.minimal_compression_rate_step == 0.025
    assert params.compression_rate_step == 0.1
    assert params.step_reduction_factor == 0.5
    assert params.lr_reduction_factor == 0.5
    assert params.maximal_total_epochs == 10000
    assert params.maximal_relative_accuracy_degradation == 1.0
    assert params.maximal_absolute_accuracy_degradation is None
    assert not params.advance_on_pass


def test_nncf_layout():
    params = parse_accuracy_aware_training(
        {
            "mode": "adaptive_compression_level",
            "params": {
                "maximal_absolute_accuracy_degradation": 0.01,
                "initial_training_phase_epochs": 5,
                "patience_epochs": 3,
                "initial_compression_rate_step": 0.2,
                "compression_rate_step_reduction_factor": 0.25,
                "lr_reduction_factor": 0.1,
                "maximal_total_epochs": 50,
                "maximal_compression_rate": 0.8,
                "advance_on_pass": True,
            },
        },
        "accuracy_aware_training",
        "nncf",
    )
    assert params.compression_rate_step == 0.2
    assert params.step_reduction_factor == 0.25
    assert params.maximal_absolute_accuracy_degradation == 0.01
    assert params.maximal_relative_accuracy_degradation is None
    assert params.maximal_compression_rate == 0.8
    assert params.advance_on_pass


def test_budget_and_criterion():
    relative = AccuracyAwareParams(maximal_relative_accuracy_degradation=10.0)
    assert relative.accuracy_budget(0.9) == pytest.approx(0.81)
    assert relative.meets_criterion(0.81, 0.9)
    assert not relative.meets_criterion(0.8099, 0.9)
    assert not relative.meets_criterion(float("nan"), 0.9)
    absolute = AccuracyAwareParams(
        maximal_relative_accuracy_degradation=None, maximal_absolute_accuracy_degradation=2.0
    )
    assert absolute.accuracy_budget(76.0) == 74.0
    assert absolute.meets_criterion(74.0, 76.0)


def test_typo_suggests_closest_key():
    with pytest.raises(ConfigError, match="Did you mean `patience_epochs`"):
        parse_accuracy_aware_training({"patience_epoch": 3}, "aa", "seed")
    with pytest.raises(ConfigError, match=r"aa\.params\.maximal_relative_accuracy_degradaton"):
        parse_accuracy_aware_training(
            {"mode": "early_exit", "params": {"maximal_relative_accuracy_degradaton": 1}},
            "aa",
            "nncf",
        )


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"patience_epochs": "3"}, r"patience_epochs`: expected an integer.*Received: .*'3'"),
        ({"patience_epochs": 0}, r"expected an integer >= 1"),
        ({"initial_training_phase_epochs": 2.5}, r"initial_training_phase_epochs"),
        ({"maximal_accuracy_degradation": -1}, r"maximal_accuracy_degradation`: expected a number"),
        ({"step_reduction_factor": 1.0}, r"step_reduction_factor`: expected a number in \(0, 1\)"),
        ({"lr_reduction_factor": 0}, r"lr_reduction_factor"),
        ({"compression_rate_step": True}, r"compression_rate_step`: expected a number"),
        ({"advance_on_pass": "yes"}, r"advance_on_pass`: expected true or false"),
        ({"mode": "fastest"}, r"mode`: expected one of"),
        (
            {"minimal_compression_rate": 0.5, "maximal_compression_rate": 0.4},
            r"minimal_compression_rate",
        ),
    ],
)
def test_wrong_types_and_ranges(section, match):
    with pytest.raises(ConfigError, match=match):
        parse_accuracy_aware_training(section, "aa", "seed")


def test_relative_and_absolute_are_exclusive_and_one_is_required():
    with pytest.raises(ConfigError, match="only one of maximal_relative"):
        parse_accuracy_aware_training(
            {
                "mode": "early_exit",
                "params": {
                    "maximal_relative_accuracy_degradation": 1.0,
                    "maximal_absolute_accuracy_degradation": 0.01,
                },
            },
            "accuracy_aware_training",
            "nncf",
        )
    with pytest.raises(ConfigError, match="Add one of the two"):
        parse_accuracy_aware_training(
            {"mode": "early_exit", "params": {"patience_epochs": 2}}, "aa", "nncf"
        )


def test_wrong_scale_warns(caplog):
    params = AccuracyAwareParams(
        maximal_relative_accuracy_degradation=None, maximal_absolute_accuracy_degradation=1.0
    )
    params.check_metric_scale(76.0)
    assert not caplog.records
    params = AccuracyAwareParams(
        maximal_relative_accuracy_degradation=None, maximal_absolute_accuracy_degradation=2.0
    )
    with caplog.at_level(logging.WARNING):
        params.check_metric_scale(0.97)
    assert "looks like a 0..1 value" in caplog.text


def test_find_section_in_whole_configs():
    seed = {
        "compression": [
            {"algorithm": "quantization"},
            {
                "algorithm": "filter_pruning",
                "accuracy_aware_training": {"maximal_accuracy_degradation": 2.0},
            },
        ]
    }
    assert find_accuracy_aware_section(seed).maximal_relative_accuracy_degradation == 2.0
    nncf = {
        "compression": {"algorithm": "filter_pruning"},
        "accuracy_aware_training": {
            "mode": "early_exit",
            "params": {"maximal_relative_accuracy_degradation": 3.0},
        },
    }
    assert find_accuracy_aware_section(nncf).mode == "early_exit"
    assert find_accuracy_aware_section({"compression": {"algorithm": "x"}}) is None
    with pytest.raises(ConfigError, match=r"compression\[1\]\.accuracy_aware_training\.patiense"):
        seed["compression"][1]["accuracy_aware_training"]["patiense"] = 3
        find_accuracy_aware_section(seed)
    both = dict(nncf, compression=seed["compression"][1])
    del both["compression"]["accuracy_aware_training"]["patiense"]
    with pytest.raises(ConfigError, match="a single accuracy_aware_training section"):
        find_accuracy_aware_section(both)
