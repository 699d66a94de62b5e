import math

import numpy as np
import pytest

from tf_aat.pruning._params import FilterPruningParams
from tf_aat.pruning._schedule import PruningScheduler


class _Recorder:
    def __init__(self):
        self.levels = []

    def _set_rate(self, rate, source):
        self.levels.append(rate)


def _levels(epochs=12, **kwargs):
    ctrl = _Recorder()
    scheduler = PruningScheduler(ctrl, FilterPruningParams(**kwargs))
    for _ in range(epochs):
        scheduler.epoch_step()
    return ctrl.levels


def test_baseline_waits_num_init_steps_then_jumps_to_target():
    assert _levels(5, schedule="baseline", pruning_target=0.4, num_init_steps=2) == [
        0.0,
        0.0,
        0.4,
        0.4,
        0.4,
    ]


def test_exponential_density_decays_geometrically_to_the_target():
    levels = _levels(
        12,
        schedule="exponential",
        pruning_init=0.1,
        pruning_target=0.5,
        pruning_steps=10,
        num_init_steps=1,
    )
    assert levels[0] == 0.0
    for epoch in range(1, 12):
        t = epoch - 1
        expected = 1.0 - 0.9 * (0.5 / 0.9) ** (t / 9) if t < 9 else 0.5
        assert levels[epoch] == pytest.approx(min(expected, 0.5))
    assert levels[1] == 0.1  # exactly: the search keys checkpoints by the exact rate
    assert levels[10] == pytest.approx(0.5)


def test_exponential_with_bias_passes_through_its_three_points():
    steps, init, target = 9, 0.1, 0.6
    levels = _levels(
        12,
        schedule="exponential_with_bias",
        pruning_init=init,
        pruning_target=target,
        pruning_steps=steps,
    )
    scheduler = PruningScheduler(
        _Recorder(),
        FilterPruningParams(
            schedule="exponential_with_bias",
            pruning_init=init,
            pruning_target=target,
            pruning_steps=steps,
        ),
    )
    a, b, k = scheduler._abk
    last = steps - 1
    assert a + b == pytest.approx(init)
    assert a * math.exp(-k * last) + b == pytest.approx(target, abs=1e-6)
    assert a * math.exp(-k * 0.125 * last) + b == pytest.approx(0.75 * target, abs=1e-6)
    assert levels[0] == pytest.approx(init)
    assert levels[-1] == pytest.approx(target)
    assert np.all(np.diff(levels) >= -1e-12)


class _FreezingRecorder(_Recorder):
    """Records the levels and the epoch at which the masks were frozen."""

    def __init__(self):
        super().__init__()
        self.frozen = False
        self.frozen_at = None
        self.scheduler = None

    def _set_rate(self, rate, source):
        if self.frozen and self.levels and rate == self.levels[-1]:
            self.levels.append(rate)
            return  # frozen: no re-selection (as the controller does)
        super()._set_rate(rate, source)

    def __setattr__(self, name, value):
        if name == "frozen" and value and not getattr(self, "frozen", False):
            object.__setattr__(self, "frozen_at", self.scheduler.current_epoch)
        object.__setattr__(self, name, value)


def _frozen_at(epochs, **kwargs):
    ctrl = _FreezingRecorder()
    scheduler = PruningScheduler(ctrl, FilterPruningParams(**kwargs))
    ctrl.scheduler = scheduler
    for _ in range(epochs):
        scheduler.epoch_step()
    return ctrl.frozen_at


def test_baseline_freezes_the_masks_after_num_init_steps_like_nncf():
    # NNCF's BaselinePruningScheduler: freeze_epoch = num_init_steps.
    assert _frozen_at(6, schedule="baseline", num_init_steps=2, pruning_steps=3) == 2
    assert _frozen_at(3, schedule="baseline", num_init_steps=0, pruning_steps=0) == 0
    # The exponential schedules freeze at num_init_steps + pruning_steps.
    assert _frozen_at(8, schedule="exponential", num_init_steps=2, pruning_steps=3) == 5


def test_baseline_selects_filters_once_on_a_real_model():
    import tf_aat
    from tests import models

    model = models.sequential_cnn()
    config = models.pruning_config(
        0.0, schedule="baseline", pruning_target=0.5, num_init_steps=1, pruning_steps=3
    )
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    scheduler = ctrl.scheduler
    scheduler.epoch_step(0)
    assert ctrl.compression_rate == 0.0
    scheduler.epoch_step(1)  # pruning starts: filters chosen now, and only now
    chosen = {k: v.copy() for k, v in ctrl.current_keep().items()}
    conv = compressed.get_layer("conv2").layer
    rng = np.random.default_rng(7)
    conv.kernel.assign(rng.normal(size=tuple(conv.kernel.shape)).astype("float32"))
    scheduler.epoch_step(2)  # NNCF: frozen; the old code re-selected here
    for key, keep in ctrl.current_keep().items():
        np.testing.assert_array_equal(keep, chosen[key])
    # The new weights would select other filters: the freeze is what kept them.
    ctrl.compression_rate = 0.5
    assert any(not np.array_equal(keep, chosen[key]) for key, keep in ctrl.current_keep().items())


def test_pruning_init_above_the_target_gives_the_target():
    for schedule in ("exponential", "exponential_with_bias", "baseline"):
        levels = _levels(
            6, schedule=schedule, pruning_init=0.6, pruning_target=0.3, pruning_steps=4
        )
        assert levels == [0.3] * 6, schedule


def test_baseline_with_zero_pruning_steps_prunes_at_once():
    assert _levels(3, schedule="baseline", pruning_target=0.4, pruning_steps=0) == [0.4] * 3
