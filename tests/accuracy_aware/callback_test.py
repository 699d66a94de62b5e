import keras
import numpy as np
import pytest

from tf_aat.accuracy_aware import AccuracyAwareCallback

from . import oracles
from .fakes import FakeController, RateLayer


def _numpy(value):
    """`value` as NumPy; variables via `.numpy()` (no NumPy 2 copy warning)."""
    return value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)


def make_model(learning_rate):
    rate_layer = RateLayer()
    model = keras.Sequential(
        [
            keras.Input((1,)),
            rate_layer,
            keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    # With x = 1, y = 0 and a positive kernel, the MAE gradient is 1, so one
    # SGD step moves the kernel by exactly minus the learning rate used.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mae")
    return model, rate_layer


class InjectMetric(keras.callbacks.Callback):
    """Writes `oracle(rate held by the model)` into the logs as the metric."""

    def __init__(self, oracle, crash_at=None):
        super().__init__()
        self.oracle = oracle
        self.crash_at = crash_at
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.crash_at is not None and self.epochs == self.crash_at:
            raise RuntimeError("simulated crash")
        self.epochs += 1
        rate = float(_numpy(self.model.layers[0].rate))
        logs["val_accuracy"] = self.oracle(rate)


class RecordLearningRate(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.used = []

    def _kernel(self):
        return float(_numpy(self.model.layers[-1].kernel)[0, 0])

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._kernel()

    def on_epoch_end(self, epoch, logs=None):
        self.used.append(self._start - self._kernel())


def fit(scenario, learning_rate=0.1, crash_at=None, log_dir=None, resume=False):
    overrides, levels, maximal, oracle, *_ = oracles.SCENARIOS[scenario]
    model, rate_layer = make_model(learning_rate)
    ctrl = FakeController(rate_layer, levels, maximal_compression_rate=maximal)
    config = {"compression": {"accuracy_aware_training": oracles.seed_section(**overrides)}}
    callback = AccuracyAwareCallback(
        ctrl, config, oracles.UNCOMPRESSED, log_dir=log_dir, resume=resume, verbose=0
    )
    recorder = RecordLearningRate()
    history = model.fit(
        np.ones((1, 1)),
        np.zeros((1, 1)),
        epochs=50,
        verbose=0,
        callbacks=[recorder, InjectMetric(oracle, crash_at), callback],
    )
    return callback, ctrl, model, recorder, history


@pytest.mark.parametrize("scenario", sorted(oracles.SCENARIOS))
def test_callback_follows_scripted_trajectory(scenario):
    _, _, _, oracle, rates, scales, final, met = oracles.SCENARIOS[scenario]
    callback, ctrl, model, _, history = fit(scenario)
    result = callback.result
    assert result.rate_trajectory == rates
    assert [row["learning_rate_scale"] for row in result.history] == scales
    assert result.compression_rate == final and result.criterion_met is met
    assert len(history.epoch) == len(rates)  # fit() was stopped by the search
    assert history.history["compression_rate"] == rates
    assert history.history["accuracy_budget"] == pytest.approx([oracles.BUDGET] * len(rates))
    assert ctrl.compression_rate == final
    model_rate = float(_numpy(model.layers[0].rate))
    assert model_rate == pytest.approx(final)
    assert oracle(model_rate) == result.compressed_metric


@pytest.mark.parametrize("schedule", [False, True])
def test_callback_learning_rate_really_changes(schedule):
    learning_rate = 0.1
    if schedule:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            0.1, decay_steps=1000, decay_rate=1.0
        )
    _, _, _, recorder, _ = fit("oscillates_to_step_limit", learning_rate)
    # Measured from the weight updates of the traced train step.
    assert recorder.used == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025], rel=1e-5)


def test_callback_resumes_after_crash(tmp_path):
    reference, *_ = fit("revisit_uses_known_outcome")
    log_dir = str(tmp_path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("revisit_uses_known_outcome", crash_at=3, log_dir=log_dir)
    resumed, ctrl, model, _, history = fit(
        "revisit_uses_known_outcome", log_dir=log_dir, resume=True
    )
    assert resumed.result.to_dict() == reference.result.to_dict()
    assert len(history.epoch) == 3
    assert ctrl.compression_rate == 0.325
    # The optimizer's step count came back with the weights (a schedule continues).
    assert int(_numpy(model.optimizer.iterations)) == int(
        _numpy(reference.model.optimizer.iterations)
    )


def test_missing_monitor_names_available_keys():
    model, rate_layer = make_model(0.1)
    ctrl = FakeController(rate_layer, [0.1])
    config = {"compression": {"accuracy_aware_training": oracles.seed_section()}}
    callback = AccuracyAwareCallback(ctrl, config, 0.9, monitor="val_acc", verbose=0)
    with pytest.raises(KeyError, match=r"'val_acc'.*Available keys: \['loss'\]"):
        model.fit(np.ones((1, 1)), np.zeros((1, 1)), epochs=2, verbose=0, callbacks=[callback])


def test_resume_after_a_learning_rate_change_keeps_the_rate(tmp_path):
    """The search halves the LR twice; a crash and resume must not scale it again."""
    _, _, _, reference, _ = fit("oscillates_to_step_limit")
    assert reference.used == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.025], rel=1e-5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("oscillates_to_step_limit", crash_at=4, log_dir=str(tmp_path))
    resumed, _, _, recorder, _ = fit("oscillates_to_step_limit", log_dir=str(tmp_path), resume=True)
    assert recorder.used == pytest.approx([0.025], rel=1e-5)  # the last epoch, as in the reference
    assert resumed.result.compression_rate == 0.25
