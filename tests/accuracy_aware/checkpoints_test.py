"""Checkpoints carry the weights, the controller's rate and the optimizer's state."""

import json
import os
import re

import keras
import numpy as np
import pytest

from tf_aat import ConfigError
from tf_aat.accuracy_aware import AccuracyAwareParams
from tf_aat.accuracy_aware._checkpoints import (
    CheckpointStore,
    checkpoint_file_stem,
    grid_decimals,
)
from tf_aat.accuracy_aware._params import parse_accuracy_aware_training
from tf_aat.accuracy_aware._search import checkpoint_key

from .fakes import FakeController, RateLayer
from .runner_test import Harness


def _trained(steps, seed=0):
    keras.utils.set_random_seed(seed)
    rate_layer = RateLayer()
    model = keras.Sequential([keras.Input((4,)), rate_layer, keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    if steps:
        model.fit(x, y, batch_size=8, epochs=steps, verbose=0)
    return model, FakeController(rate_layer, [0.1])


def test_optimizer_slots_and_step_count_are_restored(tmp_path):
    store = CheckpointStore(str(tmp_path))
    model, ctrl = _trained(steps=5)
    ctrl.compression_rate = 0.3
    store.save("last_5", model, ctrl, optimizer=model.optimizer, epoch=5)

    fresh, fresh_ctrl = _trained(steps=0, seed=1)  # optimizer not even built yet
    entry = store.restore("last_5", fresh, fresh_ctrl, optimizer=fresh.optimizer)
    assert entry["epoch"] == 5 and fresh_ctrl.compression_rate == 0.3
    assert int(fresh.optimizer.iterations.numpy()) == 5
    for saved, restored in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    for saved, restored in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())

    store.delete("last_5")
    assert not list(tmp_path.iterdir())


def test_an_optimizer_that_does_not_fit_starts_afresh(tmp_path, caplog):
    store = CheckpointStore(str(tmp_path))
    model, ctrl = _trained(steps=2)
    store.save("k", model, ctrl, optimizer=model.optimizer)
    other, other_ctrl = _trained(steps=0)
    other.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    store.restore("k", other, other_ctrl, optimizer=other.optimizer)
    assert "does not fit this optimizer" in caplog.text
    assert int(other.optimizer.iterations.numpy()) == 0
    for saved, restored in zip(model.weights, other.weights):  # the weights still came back
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())


def test_rate_checkpoint_names_read_as_the_rate_plus_a_unique_suffix():
    params = AccuracyAwareParams()  # steps 0.1, 0.05, 0.025: three decimals
    assert grid_decimals(params) == 3
    stem = checkpoint_file_stem(checkpoint_key(0.275), grid_decimals(params))
    assert re.fullmatch(r"rate_0\.275_[0-9a-f]{8}", stem)
    # A schedule's rate off the grid: rounded in the name, told apart by the suffix.
    first = checkpoint_file_stem(checkpoint_key(0.21370983), 3)
    second = checkpoint_file_stem(checkpoint_key(0.2137), 3)
    assert first.startswith("rate_0.214_") and second.startswith("rate_0.214_")
    assert first != second
    assert checkpoint_file_stem("start", 3) == "start"
    assert checkpoint_file_stem("last_4", 3) == "last_4"


@pytest.mark.parametrize(
    "step, factor, minimal, decimals",
    [(0.1, 0.5, 0.025, 3), (0.15, 0.5, 0.03, 4), (0.2, 0.5, 0.1, 1), (0.1, 0.3, 1e-4, 6)],
)
def test_grid_decimals_write_every_step_of_the_search(step, factor, minimal, decimals):
    params = AccuracyAwareParams(
        compression_rate_step=step,
        step_reduction_factor=factor,
        minimal_compression_rate_step=minimal,
    )
    assert grid_decimals(params) == decimals


def _search_files(log_dir):
    return sorted(os.listdir(os.path.join(log_dir, "checkpoints")))


def test_keep_checkpoints_keeps_the_best_and_the_latest(tmp_path):
    reference, _ = Harness("oscillates_to_step_limit").run(log_dir=str(tmp_path / "all"))
    harness = Harness("oscillates_to_step_limit")
    harness.overrides = {**harness.overrides, "keep_checkpoints": 2}
    loop, _ = harness.run(log_dir=str(tmp_path / "two"))
    assert loop.result.to_dict() == reference.result.to_dict()  # same search, same model
    everything = [f for f in _search_files(tmp_path / "all") if f.startswith("rate_")]
    kept = [f for f in _search_files(tmp_path / "two") if f.startswith("rate_")]
    # 0.1, 0.2, 0.3, 0.25 and 0.275 were saved; 0.25 (the result) and 0.275 (the
    # latest) stay, a .json and a .weights.npz each.
    assert len(everything) == 10
    assert sorted({f.split("_")[1] for f in kept}) == ["0.250", "0.275"]
    assert len(kept) == 4


def test_a_search_resumes_from_checkpoints_with_the_old_names(tmp_path):
    """tf_aat 0.1.0 named a rate's files after its key (`rate_0p25.json`)."""
    reference, _ = Harness("revisit_uses_known_outcome").run(log_dir=str(tmp_path / "reference"))
    log_dir = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        Harness("revisit_uses_known_outcome", crash_at=4).run(log_dir=str(log_dir))
    directory = log_dir / "checkpoints"
    keys = {}
    for name in os.listdir(directory):
        if name.startswith("rate_") and name.endswith(".json"):
            with open(directory / name) as file:
                entry = json.load(file)
            keys[name[: -len(".json")]] = entry.pop("key")  # the old metadata had no key
            with open(directory / name, "w") as file:
                json.dump(entry, file)
    assert len(keys) >= 3
    for name in os.listdir(directory):
        for stem, key in keys.items():
            if name.startswith(stem + "."):
                os.rename(directory / name, directory / (key + name[len(stem) :]))
    assert {n.split(".")[0] for n in os.listdir(directory) if n.startswith("rate_")} == set(
        keys.values()
    )
    loop, _ = Harness("revisit_uses_known_outcome").run(log_dir=str(log_dir), resume=True)
    assert loop.result.to_dict() == reference.result.to_dict()


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", [2]])
def test_keep_checkpoints_must_be_a_positive_integer(value):
    section = {"maximal_accuracy_degradation": 1.0, "keep_checkpoints": value}
    with pytest.raises(ConfigError, match=r"keep_checkpoints.*an integer >= 1"):
        parse_accuracy_aware_training(section)


def test_keep_checkpoints_in_both_layouts():
    assert parse_accuracy_aware_training({"keep_checkpoints": 3}).keep_checkpoints == 3
    nncf = {
        "mode": "adaptive_compression_level",
        "params": {"maximal_relative_accuracy_degradation": 1.0, "keep_checkpoints": 2.0},
    }
    assert parse_accuracy_aware_training(nncf).keep_checkpoints == 2
    assert parse_accuracy_aware_training({}).keep_checkpoints is None
