"""CompressionCallback: the config's schedule, stepped by `model.fit()`."""

import keras
import numpy as np
import pytest

import tf_aat
from tests import models


def _compressed(schedule_params, pruning_init=0.1):
    config = models.pruning_config(pruning_init, **schedule_params)
    ctrl, compressed = tf_aat.create_compressed_model(models.residual_net(), config)
    compressed.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return ctrl, compressed


def test_fit_follows_the_exponential_schedule_and_logs_the_rate():
    ctrl, compressed = _compressed(
        {"schedule": "exponential", "pruning_target": 0.5, "pruning_steps": 3}
    )
    x, y = models.images(16), np.arange(16) % 10
    history = compressed.fit(
        x, y, batch_size=8, epochs=4, verbose=0, callbacks=[tf_aat.CompressionCallback(ctrl)]
    )
    expected = [ctrl.scheduler.level_at(epoch) for epoch in range(4)]
    assert history.history["compression_rate"] == pytest.approx(expected)
    assert expected[0] == pytest.approx(0.1)
    assert expected[0] < expected[1] < expected[2] == pytest.approx(0.5)
    # The masks hold the final rate: the stripped model really lost filters.
    stripped = ctrl.strip_model(compressed)
    assert stripped.count_params() < models.residual_net().count_params()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x)),
        keras.ops.convert_to_numpy(compressed(x)),
        atol=1e-4,
    )


def test_initial_epoch_resumes_the_schedule_where_it_was():
    ctrl, compressed = _compressed(
        {"schedule": "exponential", "pruning_target": 0.5, "pruning_steps": 3}
    )
    x, y = models.images(8), np.arange(8) % 10
    history = compressed.fit(
        x,
        y,
        epochs=3,
        initial_epoch=2,
        verbose=0,
        callbacks=[tf_aat.CompressionCallback(ctrl)],
    )
    assert history.history["compression_rate"] == pytest.approx([0.5])


def test_rejects_something_that_is_not_a_controller():
    with pytest.raises(TypeError, match="create_compressed_model"):
        tf_aat.CompressionCallback(keras.Sequential())


def test_a_quantization_only_controller_trains_without_a_rate():
    config = {"compression": {"algorithm": "quantization"}}
    x, y = models.images(8), np.arange(8) % 10
    ctrl, compressed = tf_aat.create_compressed_model(models.residual_net(), config, init_data=x)
    compressed.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = compressed.fit(
        x, y, epochs=2, verbose=0, callbacks=[tf_aat.CompressionCallback(ctrl)]
    )
    assert "compression_rate" not in history.history
    assert len(history.history["loss"]) == 2
