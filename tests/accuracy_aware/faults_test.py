"""The search survives what training throws at it: NaN, inf, odd values, bad files."""

import errno
import json
import logging
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_aat._errors import ConfigError
from tf_aat.accuracy_aware import AccuracyAwareCallback, create_accuracy_aware_training_loop
from tf_aat.accuracy_aware._checkpoints import CheckpointError, CheckpointStore
from tf_aat.accuracy_aware._decision import START_KEY
from tf_aat.accuracy_aware._params import parse_accuracy_aware_training
from tf_aat.accuracy_aware._search import AccuracyAwareSearch, checkpoint_key

from . import oracles
from .fakes import FakeController, make_model
from .runner_test import Harness, seed_config


def _numpy(value):
    return value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)


def _search(**overrides):
    params = parse_accuracy_aware_training(oracles.seed_section(**overrides), "aa", "seed")
    return AccuracyAwareSearch(params, oracles.UNCOMPRESSED, maximal_rate=0.9)


# ----------------------------------------------------------- the search itself


@pytest.mark.parametrize("metric", [math.inf, math.nan, -math.inf])
def test_a_non_finite_metric_never_passes_and_moves_down(metric, caplog):
    search = _search()
    search.start(0.1)
    search.on_epoch_end(0, 0.1, 0.9)  # initial phase passes at 0.1: up to 0.2
    with caplog.at_level(logging.WARNING, "tf_aat.accuracy_aware"):
        decision = search.on_epoch_end(1, 0.2, metric)
    row = search.history[-1]
    assert row["passed"] is False
    assert checkpoint_key(0.2) not in search.rates  # no checkpoint of a broken epoch
    assert decision.save_checkpoint is None
    # Back to the last good checkpoint with fresh optimizer slots, one step down.
    assert decision.restore_checkpoint == checkpoint_key(0.1)
    assert decision.reset_optimizer
    assert decision.compression_rate == 0.15
    assert "not finite" in caplog.text
    assert search.result().compression_rate == 0.1


def test_a_fault_before_any_good_epoch_restores_the_start():
    search = _search(initial_training_phase_epochs=3)
    search.start(0.1)
    decision = search.on_epoch_end(0, 0.1, 0.9, fault="the loss is nan")
    # The initial phase ends as a failure at once.
    assert decision.restore_checkpoint == START_KEY and decision.reset_optimizer
    assert decision.compression_rate == 0.0


def test_early_exit_goes_on_after_a_fault():
    params = parse_accuracy_aware_training(
        {"mode": "early_exit", "params": {"maximal_relative_accuracy_degradation": 1.0}}
    )
    search = AccuracyAwareSearch(params, 0.9, target_rate=0.3)
    search.start(0.1)
    search.on_epoch_end(0, 0.1, 0.9)
    decision = search.on_epoch_end(1, 0.3, math.inf)
    assert not decision.stop
    assert decision.restore_checkpoint == checkpoint_key(0.1) and decision.reset_optimizer
    assert search.on_epoch_end(2, 0.3, 0.9).stop
    assert search.result().compression_rate == 0.3


# ------------------------------------------------------- a NaN batch, for real


def test_a_nan_batch_does_not_ruin_the_rest_of_the_search(caplog):
    """One NaN batch (epoch 1) leaves NaN weights and NaN Adam moments.

    The epoch fails, the last good checkpoint comes back with fresh optimizer
    slots, and the later epochs train and score normally.
    """
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    oracle = oracles.threshold(0.27)
    scores = []

    def train_epoch_fn(compression_ctrl, model, epoch, optimizer, lr_scheduler):
        x = np.ones((4, 1), "float32")
        if epoch == 1:
            x[2] = np.nan
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - 1.0))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    def validate_fn(model, epoch):
        out = _numpy(model(np.ones((1, 1), "float32")))
        # NaN weights predict NaN: the model scores chance, a finite number.
        score = oracle(float(_numpy(model.layers[0].rate))) if np.isfinite(out).all() else 0.1
        scores.append(score)
        return score

    loop = create_accuracy_aware_training_loop(seed_config(), ctrl, oracles.UNCOMPRESSED, verbose=0)
    with caplog.at_level(logging.WARNING, "tf_aat.accuracy_aware"):
        loop.run(
            model, train_epoch_fn, validate_fn, configure_optimizers_fn=lambda: (optimizer, None)
        )
    result = loop.result
    # 0.1 passes; 0.2 is the NaN epoch (a failure: down, step 0.05); 0.15
    # passes (step 0.025); 0.175 passes; 0.2 is known to have failed: stop.
    assert result.rate_trajectory == [0.1, 0.2, 0.15, 0.175]
    assert scores[2:] == [0.9, 0.9]  # no epoch after the fault scores chance
    assert result.compression_rate == 0.175 and result.criterion_met
    assert "not finite" in caplog.text and "slots" in caplog.text
    for variable in optimizer.variables + model.weights:
        assert np.isfinite(_numpy(variable)).all(), variable.path


def test_a_nan_loss_in_fit_is_a_failing_epoch():
    """The callback reads the epoch's loss: NaN fails whatever the metric says."""
    from .callback_test import InjectMetric
    from .callback_test import make_model as make_fit_model

    model, rate_layer = make_fit_model(0.1)
    ctrl = FakeController(rate_layer, [0.1])
    config = {"compression": {"accuracy_aware_training": oracles.seed_section()}}
    callback = AccuracyAwareCallback(ctrl, config, oracles.UNCOMPRESSED, verbose=0)

    class NanOnce(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            # Epoch 1 trains on a NaN kernel: its loss is NaN.
            if len(callback.search.history) == 1:
                self.model.layers[-1].kernel.assign([[np.nan]])

    model.fit(
        np.ones((1, 1)),
        np.zeros((1, 1)),
        epochs=50,
        verbose=0,
        callbacks=[NanOnce(), InjectMetric(oracles.threshold(0.27)), callback],
    )
    result = callback.result
    assert result.history[1]["passed"] is False  # the oracle said 0.9, the loss said NaN
    assert result.rate_trajectory == [0.1, 0.2, 0.15, 0.175]
    assert result.compression_rate == 0.175
    assert np.isfinite(_numpy(model.layers[-1].kernel)).all()


# ------------------------------------------------------------------ resuming


def test_resuming_a_finished_run_returns_its_result_without_training(tmp_path):
    first = Harness("oscillates_to_step_limit")
    first_loop, first_model = first.run(log_dir=str(tmp_path))
    kernel = first_model.layers[-1].kernel.numpy()
    again = Harness("oscillates_to_step_limit")
    loop, model = again.run(log_dir=str(tmp_path), resume=True)
    assert again.trained == []
    assert loop.result.to_dict() == first_loop.result.to_dict()
    np.testing.assert_array_equal(model.layers[-1].kernel.numpy(), kernel)
    assert again.ctrl.compression_rate == 0.25 and again.ctrl.mask_rate() == pytest.approx(0.25)


def test_callback_resuming_a_finished_run_trains_no_batch(tmp_path):
    from .callback_test import fit

    reference, _, reference_model, _, _ = fit("oscillates_to_step_limit", log_dir=str(tmp_path))
    kernel = reference_model.layers[-1].kernel.numpy()
    resumed, ctrl, model, recorder, _ = fit(
        "oscillates_to_step_limit", log_dir=str(tmp_path), resume=True
    )
    assert recorder.used == [0.0]  # fit() ran its one batch without training
    np.testing.assert_array_equal(model.layers[-1].kernel.numpy(), kernel)
    assert resumed.result.to_dict() == reference.result.to_dict()
    assert ctrl.compression_rate == 0.25
    # The model trains again afterwards: the train step was put back.
    model.fit(np.ones((1, 1)), np.zeros((1, 1)), epochs=1, verbose=0)
    assert model.layers[-1].kernel.numpy()[0, 0] != kernel[0, 0]


def test_resuming_with_a_changed_config_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        Harness("revisit_uses_known_outcome", crash_at=3).run(log_dir=str(tmp_path))
    changed = Harness("revisit_uses_known_outcome")
    changed.overrides = {**changed.overrides, "patience_epochs": 2, "compression_rate_step": 0.2}
    with pytest.raises(ValueError, match=r"patience_epochs: saved 1, now 2") as error:
        changed.run(log_dir=str(tmp_path), resume=True)
    assert "compression_rate_step" in str(error.value)
    assert "new log_dir" in str(error.value)
    assert changed.trained == []


def test_a_corrupt_state_file_is_named_with_the_fix(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        Harness("revisit_uses_known_outcome", crash_at=3).run(log_dir=str(tmp_path))
    state = tmp_path / "accuracy_aware_state.json"
    state.write_text(state.read_text()[:40])
    with pytest.raises(CheckpointError, match="accuracy_aware_state.json.*resume=False"):
        Harness("revisit_uses_known_outcome").run(log_dir=str(tmp_path), resume=True)


def test_a_truncated_checkpoint_is_named_with_the_fix(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        Harness("revisit_uses_known_outcome", crash_at=3).run(log_dir=str(tmp_path))
    last = json.loads((tmp_path / "accuracy_aware_state.json").read_text())["last_checkpoint"]
    weights = tmp_path / "checkpoints" / f"{last}.weights.npz"
    weights.write_bytes(weights.read_bytes()[:30])
    with pytest.raises(CheckpointError, match=rf"{last}\.weights\.npz.*BadZipFile.*resume=False"):
        Harness("revisit_uses_known_outcome").run(log_dir=str(tmp_path), resume=True)
    meta = tmp_path / "checkpoints" / f"{last}.json"
    meta.write_text("{")
    with pytest.raises(CheckpointError, match=rf"{last}\.json.*JSONDecodeError"):
        Harness("revisit_uses_known_outcome").run(log_dir=str(tmp_path), resume=True)


# ------------------------------------------------------------ durable writes


def test_checkpoint_files_are_fsynced_before_they_are_published(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", fd))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    CheckpointStore(str(tmp_path)).save("k", model, ctrl, optimizer=model.optimizer)
    published = [name for kind, name in events if kind == "replace"]
    assert published == ["k.weights.npz", "k.optimizer.npz", "k.json"]
    for index, (kind, _) in enumerate(events):
        if kind == "replace":
            assert events[index - 1][0] == "fsync"  # the file's data is on disk first


@pytest.mark.parametrize("failing", ["fsync", "savez"])
def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch, failing):
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    store = CheckpointStore(str(tmp_path))
    store.save("k", model, ctrl)
    before = sorted(os.listdir(tmp_path))

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", no_space)
    else:
        monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(OSError, match="No space left"):
        store.save("k", model, ctrl)
    assert sorted(os.listdir(tmp_path)) == before  # the old checkpoint stays, no *.tmp*
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


# ------------------------------------------------------- what users pass in


@pytest.mark.parametrize(
    "value, match",
    [
        (None, r"forget its `return`"),
        ({"accuracy": 0.9, "loss": 0.3}, r"keys \['accuracy', 'loss'\].*metrics\['accuracy'\]"),
        ("0.9", r"A string is not a metric"),
        ([0.9, 0.8], r"one number"),
    ],
)
def test_validate_fn_must_return_one_number(value, match):
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    loop = create_accuracy_aware_training_loop(seed_config(), ctrl, 0.9, verbose=0)
    with pytest.raises(TypeError, match=r"validate_fn must return.*" + match):
        loop.run(model, lambda *args, **kwargs: None, lambda model, epoch: value)


def test_validate_fn_may_return_numpy_and_tensor_scalars():
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    loop = create_accuracy_aware_training_loop(seed_config(), ctrl, 0.9, verbose=0)
    values = iter([np.float32(0.9), tf.constant(0.9), np.array([0.5])] * 5)
    loop.run(model, lambda *args, **kwargs: None, lambda model, epoch: next(values))
    assert loop.result.history[0]["passed"]


def test_a_percent_baseline_against_a_fraction_metric_is_refused():
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    config = {"compression": {"accuracy_aware_training": oracles.seed_section()}}
    with pytest.raises(
        ValueError, match=r"looks like a percentage.*uncompressed_model_accuracy=0\.98"
    ):
        AccuracyAwareCallback(ctrl, config, 98.0, monitor="val_accuracy")
    # The runner learns the metric's scale from the first epoch, before any decision.
    loop = create_accuracy_aware_training_loop(config, ctrl, 98.0, verbose=0)
    trained = []
    with pytest.raises(ValueError, match=r"\(98\).*\(0\.97\).*different scales"):
        loop.run(model, lambda *args, **kwargs: trained.append(1), lambda model, epoch: 0.97)
    assert trained == [1]
    # And the other way round: a 0..1 baseline against a percent metric.
    loop = create_accuracy_aware_training_loop(config, ctrl, 0.98, verbose=0)
    with pytest.raises(ValueError, match="different scales"):
        loop.run(model, lambda *args, **kwargs: None, lambda model, epoch: 97.0)


def test_an_absent_monitor_fails_at_the_first_epoch_end():
    from .callback_test import make_model as make_fit_model

    model, rate_layer = make_fit_model(0.1)
    ctrl = FakeController(rate_layer, [0.1])
    config = {"compression": {"accuracy_aware_training": oracles.seed_section()}}
    callback = AccuracyAwareCallback(ctrl, config, 0.9, monitor="val_acc", verbose=0)
    epochs = []

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs.append(epoch)

    with pytest.raises(KeyError, match=r"'val_acc'.*Available keys: \['loss', 'val_loss'\]"):
        model.fit(
            np.ones((1, 1)),
            np.zeros((1, 1)),
            validation_data=(np.ones((1, 1)), np.zeros((1, 1))),
            epochs=5,
            verbose=0,
            callbacks=[Count(), callback],
        )
    assert epochs == [0]


# --------------------------------------------------------------------- mode


class InjectLoss(keras.callbacks.Callback):
    """val_loss = 0.1 up to the rate 0.27, 0.2 above."""

    def on_epoch_end(self, epoch, logs=None):
        rate = float(_numpy(self.model.layers[0].rate))
        logs["val_loss"] = 0.1 if rate <= 0.27 + 1e-12 else 0.2


@pytest.mark.parametrize("mode", ["auto", "min"])
def test_a_loss_monitor_is_minimised(mode):
    from .callback_test import make_model as make_fit_model

    model, rate_layer = make_fit_model(0.1)
    ctrl = FakeController(rate_layer, [0.1])
    config = {"compression": {"accuracy_aware_training": oracles.seed_section()}}
    # Budget: 1 % above the uncompressed loss 0.1.
    callback = AccuracyAwareCallback(ctrl, config, 0.1, monitor="val_loss", mode=mode, verbose=0)
    model.fit(
        np.ones((1, 1)),
        np.zeros((1, 1)),
        epochs=50,
        verbose=0,
        callbacks=[InjectLoss(), callback],
    )
    result = callback.result
    assert result.accuracy_budget == pytest.approx(0.101)
    assert result.rate_trajectory == [0.1, 0.2, 0.3, 0.25, 0.275]
    assert result.compression_rate == 0.25 and result.criterion_met
    assert result.compressed_metric == 0.1


def test_mode_max_and_bad_mode():
    model, rate_layer = make_model()
    ctrl = FakeController(rate_layer, [0.1])
    config = {"compression": {"accuracy_aware_training": oracles.seed_section()}}
    with pytest.raises(ValueError, match=r"`mode` must be one of \['auto', 'min', 'max'\]"):
        AccuracyAwareCallback(ctrl, config, 0.9, mode="lower")
    search = AccuracyAwareSearch(
        parse_accuracy_aware_training(oracles.seed_section(), "aa", "seed"), 0.1, metric_mode="min"
    )
    assert search.meets_criterion(0.1005) and not search.meets_criterion(0.102)
    restored = AccuracyAwareSearch.from_dict(json.loads(json.dumps(search.to_dict())))
    assert restored.metric_mode == "min"


# ------------------------------------------------- controllers without a rate


class _LevelLessScheduler:
    def __init__(self):
        self.calls = []

    def epoch_step(self, next_epoch=None):
        self.calls.append(next_epoch)

    def step(self, next_step=None):
        pass


class QuantizationOnly:
    """Like tf_aat's QuantizationController: a scheduler, a state, no rate."""

    def __init__(self):
        self.scheduler = _LevelLessScheduler()

    def get_state(self):
        return {"calls": len(self.scheduler.calls)}

    def load_state(self, state):
        pass


def _early_exit(maximal_total_epochs=10):
    return {
        "compression": {"algorithm": "quantization"},
        "accuracy_aware_training": {
            "mode": "early_exit",
            "params": {
                "maximal_relative_accuracy_degradation": 1.0,
                "maximal_total_epochs": maximal_total_epochs,
            },
        },
    }


def test_early_exit_with_quantization_alone_through_the_runner(tmp_path):
    model, _ = make_model()
    ctrl = QuantizationOnly()
    metrics = iter([0.7, 0.85, 0.895, 0.9])
    loop = create_accuracy_aware_training_loop(_early_exit(), ctrl, 0.9, verbose=0)
    loop.run(
        model,
        lambda *args, **kwargs: None,
        lambda model, epoch: next(metrics),
        log_dir=str(tmp_path),
    )
    result = loop.result
    assert result.epochs == 3 and result.criterion_met  # 0.895 >= 0.891: exit
    assert result.compression_rate is None and result.compressed_metric == 0.895
    assert result.stop_reason == "the criterion was met"
    assert "compression rate:    -" in str(result)


def test_early_exit_with_quantization_alone_runs_to_maximal_total_epochs():
    model, _ = make_model()
    model.compile(optimizer="sgd", loss="mse")
    ctrl = QuantizationOnly()
    callback = AccuracyAwareCallback(ctrl, _early_exit(4), 0.9, verbose=0)

    class Metric(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_accuracy"] = 0.5

    history = model.fit(
        np.ones((1, 1)), np.zeros((1, 1)), epochs=10, verbose=0, callbacks=[Metric(), callback]
    )
    assert len(history.epoch) == 4
    assert not callback.result.criterion_met and callback.result.epochs == 4
    assert "compression_rate" not in history.history or None in history.history["compression_rate"]
    assert ctrl.scheduler.calls == [0, 1, 2, 3]


def test_adaptive_mode_without_a_rate_is_refused_when_created():
    config = {
        "compression": {"algorithm": "quantization"},
        "accuracy_aware_training": {
            "mode": "adaptive_compression_level",
            "params": {"maximal_relative_accuracy_degradation": 1.0},
        },
    }
    with pytest.raises(ConfigError, match=r"no `compression_rate`.*early_exit"):
        create_accuracy_aware_training_loop(config, QuantizationOnly(), 0.9)
    with pytest.raises(ConfigError, match=r"no `compression_rate`.*early_exit"):
        AccuracyAwareCallback(QuantizationOnly(), config, 0.9)
