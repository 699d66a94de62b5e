"""tf_aat's mend of Keras's fit for MultiWorkerMirroredStrategy changes nothing elsewhere:
one device trains to the very same weights with and without it (the two-worker runs
that need it are in multi_worker_test.py)."""

import keras
import numpy as np
import pytest

from tf_aat import _keras_multi_worker


def _train():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(x, y))
    return model.get_weights(), history.history


def test_one_device_trains_the_same_with_the_mend():
    if _keras_multi_worker._APPLIED:
        pytest.skip("the mend was applied earlier in this process: no unmended run to compare")
    before_weights, before_history = _train()
    assert _keras_multi_worker.apply() is True
    assert _keras_multi_worker.apply() is True  # idempotent
    after_weights, after_history = _train()
    assert after_history == before_history
    for a, b in zip(before_weights, after_weights):
        np.testing.assert_array_equal(a, b)
