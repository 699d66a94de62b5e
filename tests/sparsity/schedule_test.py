"""NNCF's sparsity schedules, epoch by epoch, and freezing."""

import keras
import numpy as np
import pytest

import tf_aat
from tests.sparsity.helpers import kernels, make_model, zero_fraction


def _ctrl(algorithm="magnitude_sparsity", init=0.1, **params):
    keras.utils.set_random_seed(0)
    config = {"compression": {"algorithm": algorithm, "sparsity_init": init, "params": params}}
    return tf_aat.create_compressed_model(make_model(), config)


def _levels(ctrl, epochs):
    levels = []
    for epoch in range(epochs):
        ctrl.scheduler.epoch_step(epoch)
        levels.append(ctrl.compression_rate)
    return levels


def test_polynomial_concave_default_is_nncfs_formula():
    ctrl, _ = _ctrl(sparsity_target=0.5, sparsity_target_epoch=4)
    # NNCF: target - (target - init) * (1 - epoch / target_epoch) ** 0.9
    expected = [0.5 - 0.4 * (1 - min(e / 4, 1.0)) ** 0.9 for e in range(6)]
    assert _levels(ctrl, 6) == pytest.approx(expected)
    assert expected[1] == pytest.approx(0.1912, abs=1e-4)


def test_polynomial_convex_and_power():
    ctrl, _ = _ctrl(
        schedule="polynomial", power=2, concave=False, sparsity_target=0.7, sparsity_target_epoch=5
    )
    # NNCF's concave=false: init + (target - init) * (epoch / target_epoch) ** power
    expected = [0.1 + 0.6 * (min(e / 5, 1.0)) ** 2 for e in range(7)]
    assert _levels(ctrl, 7) == pytest.approx(expected)
    assert zero_fraction(kernels(ctrl).values()) == pytest.approx(0.7, abs=1e-3)


def test_exponential_decays_the_density():
    ctrl, _ = _ctrl(schedule="exponential", sparsity_target=0.6, sparsity_target_epoch=3)
    expected = [1 - max(0.9 * (0.4 / 0.9) ** (e / 3), 0.4) for e in range(5)]
    assert _levels(ctrl, 5) == pytest.approx(expected)
    assert expected[-1] == pytest.approx(0.6)


def test_rb_default_schedule_is_exponential():
    ctrl, _ = _ctrl("rb_sparsity", sparsity_target=0.6, sparsity_target_epoch=3)
    assert ctrl.scheduler.schedule == "exponential"
    assert _levels(ctrl, 2)[1] == pytest.approx(1 - 0.9 * (0.4 / 0.9) ** (1 / 3))


def test_multistep_levels_and_target():
    ctrl, _ = _ctrl(
        schedule="multistep", multistep_steps=[4, 2], multistep_sparsity_levels=[0.2, 0.3, 0.45]
    )
    assert ctrl.compression_rate == 0.2  # the first level applies from the start
    assert ctrl.scheduler.target_level == 0.45
    assert _levels(ctrl, 6) == [0.2, 0.2, 0.3, 0.3, 0.45, 0.45]


def test_adaptive_raises_the_level_every_patience_epochs_with_magnitude_masks():
    ctrl, _ = _ctrl(schedule="adaptive", step=0.1, patience=2, sparsity_target=0.35)
    # The magnitude masks always give the level, so every epoch counts; the
    # level rises by `step` each `patience` epochs, up to the target.
    assert _levels(ctrl, 7) == pytest.approx([0.1, 0.2, 0.2, 0.3, 0.3, 0.35, 0.35])


def test_adaptive_waits_for_rb_masks_to_catch_up():
    ctrl, _ = _ctrl(
        "rb_sparsity", init=0.3, schedule="adaptive", step=0.1, eps=0.03, sparsity_target=0.6
    )
    assert ctrl.measured_level() == 0.0
    assert _levels(ctrl, 3) == pytest.approx([0.3, 0.3, 0.3])
    for _, _, mask in ctrl.entries:  # the learned masks reach 0.3
        logits = mask.mask.numpy()
        logits.reshape(-1)[: int(0.3 * logits.size) + 1] = -1.0
        mask.mask.assign(logits)
    assert _levels(ctrl, 4)[-1] == pytest.approx(0.4)


def test_freeze_epoch_fixes_magnitude_masks():
    ctrl, compressed = _ctrl(sparsity_target=0.5, sparsity_target_epoch=4, sparsity_freeze_epoch=2)
    _levels(ctrl, 2)
    level = ctrl.compression_rate
    before = kernels(ctrl)
    conv = compressed.get_layer("conv2").layer
    conv.kernel.assign(np.random.default_rng(1).normal(size=conv.kernel.shape))
    for epoch in (2, 3, 4):
        ctrl.scheduler.epoch_step(epoch)
    assert ctrl.frozen and ctrl.compression_rate == level
    after = kernels(ctrl)
    for key in before:
        np.testing.assert_array_equal(before[key] == 0, after[key] == 0)
    ctrl.compression_rate = 0.6  # the search (or the user) still sets a level
    assert zero_fraction(kernels(ctrl).values()) == pytest.approx(0.6, abs=1e-3)


def test_rb_freeze_stops_the_loss_and_uses_binarised_masks():
    ctrl, compressed = _ctrl("rb_sparsity", sparsity_freeze_epoch=1)
    _levels(ctrl, 2)
    assert ctrl.frozen
    assert all(float(mask.frozen.numpy()) == 1.0 for _, _, mask in ctrl.entries)
    x = np.zeros((2, 8, 8, 1), "float32")
    compressed(x, training=True)
    assert float(sum(keras.ops.convert_to_numpy(v) for v in compressed.losses)) == 0.0


def test_disabled_scheduler_changes_nothing():
    ctrl, _ = _ctrl(sparsity_target=0.5, sparsity_target_epoch=2)
    ctrl.disable_scheduler()
    _levels(ctrl, 3)
    assert ctrl.compression_rate == 0.1


def test_per_optimizer_step_polynomial():
    ctrl, _ = _ctrl(
        sparsity_target=0.5,
        sparsity_target_epoch=2,
        update_per_optimizer_step=True,
        steps_per_epoch=4,
        concave=False,
        power=1,
    )
    scheduler = ctrl.scheduler
    seen = []
    for epoch in range(2):
        scheduler.epoch_step(epoch)
        for _ in range(4):
            scheduler.step()
            seen.append(ctrl.compression_rate)
    expected = [0.1 + 0.4 * (e + s / 4) / 2 for e in range(2) for s in range(4)]
    assert seen == pytest.approx(expected)


def test_per_optimizer_step_without_steps_per_epoch_measures_the_first_epoch():
    ctrl, _ = _ctrl(
        sparsity_target=0.5,
        sparsity_target_epoch=2,
        update_per_optimizer_step=True,
        concave=False,
        power=1,
    )
    scheduler = ctrl.scheduler
    scheduler.epoch_step()
    for _ in range(4):
        scheduler.step()
    assert ctrl.compression_rate == 0.1  # NNCF: the first epoch counts its steps
    scheduler.epoch_step()
    scheduler.step()
    assert scheduler.steps_per_epoch == 4
    assert ctrl.compression_rate == pytest.approx(0.1)
    scheduler.step()
    assert ctrl.compression_rate == pytest.approx(0.1 + 0.4 * (0.25 / 2))


def test_compression_callback_steps_a_per_step_schedule_inside_fit():
    ctrl, compressed = _ctrl(
        sparsity_target=0.5,
        sparsity_target_epoch=2,
        update_per_optimizer_step=True,
        steps_per_epoch=4,
        concave=False,
        power=1,
    )
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(ctrl.compression_rate)

    shape = (16, *compressed.input_shape[1:])
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    y = np.zeros((16, *compressed.output_shape[1:]), "float32")
    compressed.compile("sgd", "mse")
    compressed.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[tf_aat.CompressionCallback(ctrl), Record()],
    )
    expected = [0.1 + 0.4 * (e + s / 4) / 2 for e in range(2) for s in range(4)]
    assert seen == pytest.approx(expected)
