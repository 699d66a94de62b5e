"""Early exit for every algorithm mix, on digits: pruning + int8 and int8 alone."""

import json
import pathlib

import keras
import pytest

import tf_aat
from tf_aat.accuracy_aware import AccuracyAwareCallback

from .digits_test import compile_model, load_digits, make_model

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "configs"


@pytest.fixture(scope="module")
def baseline():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_val, y_val) = load_digits()
    model = make_model()
    compile_model(model)
    model.fit(x_train, y_train, batch_size=64, epochs=15, verbose=0)
    accuracy = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.7
    return model, accuracy, (x_train, y_train), (x_val, y_val)


def _copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def test_shipped_pruning_int8_early_exit_config_exits_early(baseline, tmp_path):
    """examples/configs/digits_early_exit_int8.json, its full 20-epoch budget."""
    model, uncompressed, (x_train, y_train), (x_val, y_val) = baseline
    keras.utils.set_random_seed(1)
    config = tf_aat.CompressionConfig.from_json(CONFIGS / "digits_early_exit_int8.json")
    budget_epochs = config.accuracy_aware_training.maximal_total_epochs
    assert budget_epochs == 20
    ctrl, compressed = tf_aat.create_compressed_model(_copy(model), config, init_data=x_train[:256])
    compile_model(compressed)
    callback = AccuracyAwareCallback(
        ctrl, config, uncompressed, monitor="val_accuracy", log_dir=str(tmp_path), verbose=0
    )
    history = compressed.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=64,
        epochs=budget_epochs,
        verbose=0,
        callbacks=[callback],
    )
    result = callback.result
    assert result.criterion_met, str(result)
    assert result.stop_reason == "the target rate met the criterion"
    # The schedule (0.1, ~0.2, 0.3 at epoch 2) reaches the target 0.3 by
    # epoch 2; the run stops at the first epoch from there that is in budget.
    assert 3 <= result.epochs < budget_epochs
    assert len(history.epoch) == result.epochs
    assert result.compression_rate == pytest.approx(0.3)
    assert ctrl.compression_rate == pytest.approx(0.3)
    accuracy = compressed.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(result.compressed_metric, abs=1e-6)
    assert accuracy >= result.accuracy_budget - 1e-6
    saved = json.loads((tmp_path / "accuracy_aware_result.json").read_text())
    assert saved["epochs"] == result.epochs


def _int8_early_exit(maximal_total_epochs):
    return tf_aat.CompressionConfig.from_dict(
        {
            "compression": {"algorithm": "quantization"},
            "accuracy_aware_training": {
                "mode": "early_exit",
                "params": {
                    "maximal_relative_accuracy_degradation": 2.0,
                    "maximal_total_epochs": maximal_total_epochs,
                },
            },
        }
    )


@pytest.mark.parametrize("driver", ["callback", "runner"])
def test_int8_alone_early_exit(baseline, driver):
    """NNCF's resnet50_int8_accuracy_aware.json kind of config: no rate at all."""
    model, uncompressed, (x_train, y_train), (x_val, y_val) = baseline
    keras.utils.set_random_seed(2)
    config = _int8_early_exit(4)
    ctrl, compressed = tf_aat.create_compressed_model(_copy(model), config, init_data=x_train[:256])
    compile_model(compressed)
    if driver == "callback":
        callback = AccuracyAwareCallback(ctrl, config, uncompressed, verbose=0)
        compressed.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            batch_size=64,
            epochs=10,
            verbose=0,
            callbacks=[callback],
        )
        result = callback.result
    else:

        def train_epoch_fn(compression_ctrl, model, epoch, optimizer, lr_scheduler):
            model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)

        def validate_fn(model, epoch):
            return model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]

        loop = tf_aat.create_accuracy_aware_training_loop(config, ctrl, uncompressed, verbose=0)
        loop.run(compressed, train_epoch_fn, validate_fn)
        result = loop.result
    assert result.compression_rate is None
    assert 1 <= result.epochs <= 4
    if result.criterion_met:
        assert result.stop_reason == "the criterion was met"
    else:
        assert result.epochs == 4
    accuracy = compressed.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(result.compressed_metric, abs=1e-6)


def test_int8_alone_adaptive_is_refused_naming_early_exit(baseline):
    model, uncompressed, (x_train, _), _ = baseline
    config = tf_aat.CompressionConfig.from_dict(
        {
            "compression": {"algorithm": "quantization"},
            "accuracy_aware_training": {
                "mode": "adaptive_compression_level",
                "params": {"maximal_relative_accuracy_degradation": 1.0},
            },
        }
    )
    ctrl, _ = tf_aat.create_compressed_model(_copy(model), config, init_data=x_train[:64])
    with pytest.raises(ValueError, match="early_exit"):
        AccuracyAwareCallback(ctrl, config, uncompressed)
    with pytest.raises(ValueError, match="early_exit"):
        tf_aat.create_accuracy_aware_training_loop(config, ctrl, uncompressed)
