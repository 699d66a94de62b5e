"""The adaptive search over the magnitude sparsity level on digits: callback and runner."""

import keras
import numpy as np
import pytest

import tf_aat
from tests.sparsity.helpers import compile_model, kernels, load_digits, make_model, zero_fraction


def _config():
    return tf_aat.CompressionConfig.from_dict(
        {
            "compression": {
                "algorithm": "magnitude_sparsity",
                "sparsity_init": 0.3,
                "params": {
                    "schedule": "multistep",
                    "multistep_steps": [],
                    "multistep_sparsity_levels": [0.3],
                },
                "accuracy_aware_training": {
                    "maximal_accuracy_degradation": 3.0,
                    "initial_training_phase_epochs": 1,
                    "patience_epochs": 1,
                    "compression_rate_step": 0.2,
                    "minimal_compression_rate_step": 0.1,
                    "maximal_total_epochs": 5,
                },
            }
        }
    )


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    data = load_digits()
    model = make_model()
    compile_model(model)
    model.fit(*data[0], batch_size=64, epochs=15, verbose=0)
    accuracy = model.evaluate(*data[1], verbose=0, return_dict=True)["accuracy"]
    return model, data, accuracy


def _check(ctrl, compressed, result, x_val, y_val):
    assert result.criterion_met, result
    assert ctrl.compression_rate == result.compression_rate >= 0.3
    # The returned model has the reported level: zeros in the sparsified kernels.
    level = zero_fraction(kernels(ctrl).values())
    assert level == pytest.approx(result.compression_rate, abs=1e-3)
    stripped = ctrl.strip_model(compressed)
    plain = [stripped.get_layer(n).kernel.numpy() for n in ("conv1", "conv2", "classifier")]
    assert zero_fraction(plain) == pytest.approx(result.compression_rate, abs=1e-3)
    accuracy = compressed.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(result.compressed_metric, abs=1e-6)
    assert accuracy >= result.accuracy_budget - 1e-6


def test_search_through_the_callback(trained, tmp_path):
    model, ((x, y), (x_val, y_val)), uncompressed = trained
    config = _config()
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compile_model(compressed)
    callback = tf_aat.AccuracyAwareCallback(
        ctrl, config, uncompressed, monitor="val_accuracy", log_dir=str(tmp_path), verbose=0
    )
    compressed.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        batch_size=64,
        epochs=10,
        verbose=0,
        callbacks=[callback],
    )
    result = callback.result
    assert result is not None and result.epochs <= 5
    assert len({row["rate"] for row in result.history}) > 1  # the search varied the level
    _check(ctrl, compressed, result, x_val, y_val)


def test_search_through_the_runner(trained, tmp_path):
    model, ((x, y), (x_val, y_val)), uncompressed = trained
    config = _config()
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compile_model(compressed)

    def train_epoch_fn(compression_ctrl, model, epoch, optimizer, lr_scheduler):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)

    def validate_fn(model, epoch):
        return model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]

    loop = tf_aat.create_accuracy_aware_training_loop(config, ctrl, uncompressed, verbose=0)
    returned = loop.run(compressed, train_epoch_fn, validate_fn, log_dir=str(tmp_path))
    result = loop.result
    assert returned is compressed
    rates = [row["rate"] for row in result.history]
    assert rates[0] == pytest.approx(0.3) and max(rates) > 0.3
    _check(ctrl, compressed, result, x_val, y_val)
    np.testing.assert_allclose(
        result.compression_rate, ctrl.statistics().to_dict()["compression_rate"]
    )
