"""Checkpoints carry the weights, the controller's rate and the optimizer's state."""

import keras
import numpy as np

from tf_aat.accuracy_aware._checkpoints import CheckpointStore

from .fakes import FakeController, RateLayer


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
