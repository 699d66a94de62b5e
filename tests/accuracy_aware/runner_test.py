import json
import os
import re

import keras
import numpy as np
import pytest

from tf_aat.accuracy_aware import (
    AccuracyAwareParams,
    ScaledLearningRateSchedule,
    create_accuracy_aware_training_loop,
)
from tf_aat.accuracy_aware._search import checkpoint_key

from . import oracles
from .fakes import FakeController, make_model


def _numpy(value):
    """`value` as NumPy; variables via `.numpy()` (no NumPy 2 copy warning)."""
    return value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)


def seed_config(**overrides):
    return {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "accuracy_aware_training": oracles.seed_section(**overrides),
            }
        ]
    }


class Harness:
    """A fake model and controller whose metric is `oracle(mask rate)`."""

    def __init__(self, scenario, optimizer=None, crash_at=None):
        overrides, levels, maximal, oracle, *_ = oracles.SCENARIOS[scenario]
        self.overrides = overrides
        self.oracle = oracle
        self.model, rate_layer = make_model()
        self.ctrl = FakeController(rate_layer, levels, maximal_compression_rate=maximal)
        self.optimizer = optimizer
        self.crash_at = crash_at
        self.learning_rates = []
        self.trained = []

    def train_epoch_fn(self, compression_ctrl, model, epoch, optimizer, lr_scheduler):
        assert compression_ctrl is self.ctrl and model is self.model
        self.trained.append((epoch, compression_ctrl.compression_rate))
        if optimizer is not None:
            self.learning_rates.append(float(_numpy(optimizer.learning_rate)))
        # "Training" changes the weights, so restores are observable.
        dense = model.layers[-1]
        dense.kernel.assign(dense.kernel + 1.0)

    def validate_fn(self, model, epoch):
        if self.crash_at is not None and epoch == self.crash_at:
            raise RuntimeError("simulated crash")
        # Read the rate from the model's weights (the "masks"), not from
        # the controller: the metric belongs to the model.
        return self.oracle(float(_numpy(model.layers[0].rate)))

    def run(self, **kwargs):
        loop = create_accuracy_aware_training_loop(
            seed_config(**self.overrides), self.ctrl, oracles.UNCOMPRESSED, verbose=0
        )
        configure = (lambda: (self.optimizer, None)) if self.optimizer is not None else None
        model = loop.run(
            self.model,
            self.train_epoch_fn,
            self.validate_fn,
            configure_optimizers_fn=configure,
            **kwargs,
        )
        return loop, model


@pytest.mark.parametrize("scenario", sorted(oracles.SCENARIOS))
def test_runner_follows_scripted_trajectory(scenario):
    _, _, _, _, rates, scales, final, met = oracles.SCENARIOS[scenario]
    harness = Harness(scenario)
    loop, model = harness.run()
    result = loop.result
    assert result.rate_trajectory == rates
    assert [rate for _, rate in harness.trained] == rates
    assert [row["learning_rate_scale"] for row in result.history] == scales
    assert result.compression_rate == final and result.criterion_met is met
    # Weights ("masks"), controller and result agree on the returned rate.
    assert harness.ctrl.compression_rate == final
    assert harness.ctrl.mask_rate() == pytest.approx(final)
    metric = harness.validate_fn(model, epoch=-1)
    assert metric == result.compressed_metric
    assert oracles.UNCOMPRESSED * 0.99 - 1e-9 <= metric if met else metric < oracles.BUDGET


def test_restored_checkpoint_is_the_best_epoch_of_the_final_rate():
    harness = Harness("oscillates_to_step_limit")
    kernel = harness.model.layers[-1].kernel.numpy()
    loop, model = harness.run()
    # Each epoch adds 1 to the kernel. Epoch 0 (0.1) -> +1, restore 0.1;
    # epoch 1 (0.2) -> +2; epoch 2 (0.3) -> +3, restore 0.2 (+2); epoch 3
    # (0.25) -> +3; epoch 4 (0.275) -> +4, then the final restore of 0.25.
    np.testing.assert_allclose(model.layers[-1].kernel.numpy(), kernel + 3)
    assert [row["epoch"] for row in loop.result.rates if row["rate"] == 0.25] == [3]
    assert harness.ctrl.scheduler_disabled
    # The schedule ran only during the one-epoch initial phase.
    assert harness.ctrl.scheduler.calls == [0]


def test_float_learning_rate_is_scaled():
    harness = Harness("oscillates_to_step_limit", optimizer=keras.optimizers.SGD(0.1))
    harness.run()
    assert harness.learning_rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025])


def test_learning_rate_schedule_is_scaled():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=1.0)
    optimizer = keras.optimizers.SGD(schedule)
    harness = Harness("oscillates_to_step_limit", optimizer=optimizer)
    harness.run()
    assert harness.learning_rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025])
    wrapped = optimizer.learning_rate  # evaluated: still scaled after the run
    assert float(_numpy(wrapped)) == pytest.approx(0.025)
    config = keras.optimizers.schedules.serialize(ScaledLearningRateSchedule(schedule, 0.5))
    restored = keras.optimizers.schedules.deserialize(config)
    assert float(_numpy(restored(0))) == pytest.approx(0.05)


def test_update_learning_rate_fn_gets_relative_factors():
    factors = []
    harness = Harness("oscillates_to_step_limit")
    harness.run(update_learning_rate_fn=factors.append)
    assert factors == [0.5, 0.5]


def test_resume_after_crash_gives_the_same_result(tmp_path):
    reference = Harness("revisit_uses_known_outcome")
    reference_loop, _ = reference.run(log_dir=str(tmp_path / "reference"))

    log_dir = str(tmp_path / "crashed")
    crashed = Harness("revisit_uses_known_outcome", crash_at=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.run(log_dir=log_dir)
    # A new process: fresh model and controller, same log_dir.
    resumed = Harness("revisit_uses_known_outcome")
    loop, model = resumed.run(log_dir=log_dir, resume=True)
    assert loop.result.to_dict() == reference_loop.result.to_dict()
    assert [epoch for epoch, _ in resumed.trained] == [4, 5]
    assert resumed.ctrl.compression_rate == 0.325
    assert resumed.ctrl.mask_rate() == pytest.approx(0.325)
    np.testing.assert_allclose(
        model.layers[-1].kernel.numpy(), reference.model.layers[-1].kernel.numpy()
    )


def test_log_dir_gets_checkpoints_summary_plot_and_tensorboard(tmp_path):
    harness = Harness("oscillates_to_step_limit")
    loop, _ = harness.run(log_dir=str(tmp_path))
    files = set(os.listdir(tmp_path))
    assert {"accuracy_aware_state.json", "accuracy_aware_summary.txt"} <= files
    assert {"accuracy_aware_result.json", "accuracy_aware.png"} <= files
    checkpoints = set(os.listdir(tmp_path / "checkpoints"))
    # The rate to the grid's precision (its 0.025 step: 3 decimals) plus a unique suffix.
    [stem] = [
        f[: -len(".json")]
        for f in checkpoints
        if f.startswith("rate_0.250_") and f.endswith(".json")
    ]
    assert re.fullmatch(r"rate_0\.250_[0-9a-f]{8}", stem)
    assert f"{stem}.weights.npz" in checkpoints
    with open(tmp_path / "checkpoints" / f"{stem}.json") as file:
        entry = json.load(file)
    assert entry["controller_state"]["compression_rate"] == 0.25
    assert entry["key"] == checkpoint_key(0.25)
    assert "0.25" in (tmp_path / "accuracy_aware_summary.txt").read_text()
    assert len([f for f in checkpoints if f.startswith("last_")]) == 2  # .weights.npz + .json


def test_early_exit_through_the_runner():
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1, 0.2, 0.3])
    config = {
        "compression": {"algorithm": "filter_pruning"},
        "accuracy_aware_training": {
            "mode": "early_exit",
            "params": {"maximal_absolute_accuracy_degradation": 0.01, "maximal_total_epochs": 10},
        },
    }
    metrics = iter([0.9, 0.9, 0.85, 0.895, 0.9])
    loop = create_accuracy_aware_training_loop(config, ctrl, 0.9, verbose=0)
    loop.run(model, lambda *args, **kwargs: None, lambda model, epoch: next(metrics))
    # Epoch 2 reaches the target 0.3 but misses the budget; epoch 3 meets it.
    assert loop.result.rate_trajectory == [0.1, 0.2, 0.3, 0.3]
    assert loop.result.compression_rate == 0.3 and loop.result.criterion_met
    assert ctrl.scheduler.calls == [0, 1, 2, 3]
    assert ctrl.compression_rate == 0.3


def test_config_object_and_errors():
    class Config:
        accuracy_aware_training = AccuracyAwareParams(patience_epochs=2)

    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    loop = create_accuracy_aware_training_loop(Config(), ctrl, 0.9)
    assert loop.params.patience_epochs == 2
    with pytest.raises(ValueError, match="accuracy_aware_training section"):
        create_accuracy_aware_training_loop({"compression": []}, ctrl, 0.9)
    with pytest.raises(TypeError, match="Unexpected arguments"):
        create_accuracy_aware_training_loop(Config(), ctrl, 0.9, dump_chekpoints=True)


def test_resume_with_an_optimizer_keeps_the_searched_learning_rate(tmp_path):
    """The runner saves the optimizer with the resume point; its scaled float
    learning rate is re-derived from the search, not scaled a second time."""

    def harness(**kwargs):
        h = Harness("oscillates_to_step_limit", optimizer=keras.optimizers.SGD(0.1), **kwargs)
        h.optimizer.build(h.model.trainable_variables)
        return h

    reference = harness()
    reference.run()
    assert reference.learning_rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025])
    with pytest.raises(RuntimeError, match="simulated crash"):
        harness(crash_at=4).run(log_dir=str(tmp_path))
    resumed = harness()
    loop, _ = resumed.run(log_dir=str(tmp_path), resume=True)
    assert resumed.learning_rates == pytest.approx([0.025])
    assert loop.result.compression_rate == 0.25
    saved = [f for f in os.listdir(tmp_path / "checkpoints") if f.endswith(".optimizer.npz")]
    assert saved  # the resume point carried the optimizer
