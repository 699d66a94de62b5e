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
