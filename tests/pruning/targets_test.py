"""Targets above what pruning can reach are clamped with a warning and reported as such."""

import logging

import keras
import pytest

import tf_aat
from tests import models


def _nothing_prunable():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="dense_only")


def _unreachable_warnings(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tf_aat" and r.levelno == logging.WARNING and "Received:" in r.getMessage()
    ]


def test_flops_target_above_the_reachable_maximum_warns_and_reports_what_was_achieved(caplog):
    # NNCF's default: the first convolution stays, so 0.95 of the FLOPs cannot go.
    config = models.pruning_config(0.0, pruning_flops_target=0.95, prune_first_conv=False)
    ctrl, _ = tf_aat.create_compressed_model(models.residual_net(), config)
    reachable = ctrl.maximal_compression_rate
    assert reachable < 0.95
    with caplog.at_level(logging.WARNING, "tf_aat"):
        ctrl.compression_rate = 0.95
    (message,) = _unreachable_warnings(caplog)
    assert "a FLOPs reduction of 0.9500" in message
    assert f"{reachable:.4f}" in message
    assert "Received: compression_rate=0.95" in message

    stats = ctrl.statistics()
    d = stats.to_dict()
    assert d["compression_rate"] == 0.95  # what was asked
    assert d["achieved_compression_rate"] == pytest.approx(reachable)
    assert d["achieved_compression_rate"] == pytest.approx(d["flops_reduction"])
    assert d["achieved_compression_rate"] < 0.95
    assert d["reachable_compression_rate"] == pytest.approx(reachable)
    assert d["target_reached"] is False
    text = str(stats)
    assert "0.9500 asked" in text
    assert f"{reachable:.4f} achieved" in text
    assert "target not reached" in text

    # The same value again does not warn again; a reachable one reports as met.
    caplog.clear()
    with caplog.at_level(logging.WARNING, "tf_aat"):
        ctrl.compression_rate = 0.95
        ctrl.compression_rate = 0.3
    assert _unreachable_warnings(caplog) == []
    d = ctrl.statistics().to_dict()
    assert d["target_reached"] is True
    assert d["achieved_compression_rate"] >= 0.3
    assert d["reachable_compression_rate"] is None
    assert "target not reached" not in str(ctrl.statistics())


def test_scheduled_flops_target_above_the_maximum_warns_once():
    config = models.pruning_config(
        0.0,
        schedule="baseline",
        pruning_flops_target=0.95,
        num_init_steps=1,
        pruning_steps=2,
        prune_first_conv=False,
    )
    ctrl, _ = tf_aat.create_compressed_model(models.residual_net(), config)
    logger = logging.getLogger("tf_aat")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        for _ in range(4):
            ctrl.scheduler.epoch_step()
    finally:
        logger.removeHandler(handler)
    warnings = [r for r in records if "more than it can reach" in r.getMessage()]
    assert len(warnings) == 1
    assert ctrl.statistics().to_dict()["achieved_compression_rate"] < 0.95


def test_level_above_maximal_pruning_level_warns_and_reports_the_applied_level(caplog):
    config = models.pruning_config(0.0, maximal_pruning_level=0.5)
    ctrl, _ = tf_aat.create_compressed_model(models.sequential_cnn(), config)
    with caplog.at_level(logging.WARNING, "tf_aat"):
        ctrl.compression_rate = 0.8
    (message,) = _unreachable_warnings(caplog)
    assert "a pruning level of 0.8000" in message and "0.5 (maximal_pruning_level)" in message
    d = ctrl.statistics().to_dict()
    assert d["compression_rate"] == 0.8
    assert d["pruning_level"] == d["achieved_compression_rate"] == 0.5
    assert d["target_reached"] is False


@pytest.mark.parametrize("flops", [False, True], ids=["level", "flops"])
def test_nothing_prunable_reports_zero_and_warns(caplog, flops):
    params = {"pruning_flops_target": 0.5} if flops else {}
    with caplog.at_level(logging.WARNING, "tf_aat"):
        ctrl, _ = tf_aat.create_compressed_model(
            _nothing_prunable(), models.pruning_config(0.4, **params)
        )
    (message,) = _unreachable_warnings(caplog)
    assert "no prunable convolution groups" in message
    assert "Received: compression_rate=0.4" in message
    d = ctrl.statistics().to_dict()
    assert d["compression_rate"] == 0.4
    assert d["achieved_compression_rate"] == 0.0
    assert d["pruning_level"] == 0.0
    assert d["flops_reduction"] == 0.0
    assert d["current_filters"] == d["full_filters"] == 0
    assert d["target_reached"] is False
    assert "nothing is prunable" in str(ctrl.statistics())


def test_nothing_prunable_at_rate_zero_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, "tf_aat"):
        ctrl, _ = tf_aat.create_compressed_model(_nothing_prunable(), models.pruning_config(0.0))
    assert _unreachable_warnings(caplog) == []
    assert ctrl.statistics().to_dict()["target_reached"] is True
