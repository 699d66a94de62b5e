"""The search's final metric is re-measured on the stripped (deployed) model."""

import json

import keras
import numpy as np
import pytest

import tf_aat

from .digits_test import load_digits

pytestmark = pytest.mark.onednn


def _digits_and_model():
    """512 digits training images, the validation set and a small seeded CNN."""
    keras.utils.set_random_seed(0)
    (x_train, y_train), validation = load_digits()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    return (x_train[:512], y_train[:512]), validation, model


def test_the_result_reports_the_stripped_models_metric_beside_the_searched_one(tmp_path):
    (x_train, y_train), (x_val, y_val), model = _digits_and_model()
    config = {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.2,
                "params": {"schedule": "baseline", "prune_first_conv": True},
                "accuracy_aware_training": {
                    "maximal_accuracy_degradation": 100.0,
                    "initial_training_phase_epochs": 1,
                    "patience_epochs": 1,
                    "maximal_total_epochs": 2,
                },
            },
            {
                "algorithm": "quantization",
                "preset": "mixed",
                "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
            },
        ]
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=x_train[:64])
    compressed.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    validated = []

    def train_epoch_fn(compression_ctrl, model, epoch, optimizer, lr_scheduler):
        model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)

    def validate_fn(model, epoch):
        validated.append(model)
        return model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]

    loop = tf_aat.create_accuracy_aware_training_loop(config, ctrl, 1.0, verbose=0)
    returned = loop.run(compressed, train_epoch_fn, validate_fn, log_dir=str(tmp_path))
    result = loop.result
    # The last validation ran on a different, smaller model: the stripped one.
    assert validated[-1] is not returned
    assert validated[-1].count_params() < returned.count_params()
    assert result.stripped_metric is not None
    # Strip is exact under QAT: the deployed model scores what the search certified.
    assert result.stripped_metric == pytest.approx(
        returned_metric := validate_fn(returned, 0), abs=1e-9
    )
    assert returned_metric == pytest.approx(result.compressed_metric, abs=1e-9)
    assert "stripped metric" in str(result)
    saved = json.loads((tmp_path / "accuracy_aware_result.json").read_text())
    assert saved["stripped_metric"] == result.stripped_metric


def test_the_callback_measures_the_stripped_model_on_the_validation_data_it_is_given():
    (x_train, y_train), (x_val, y_val), model = _digits_and_model()
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "pruning_init": 0.2,
            "params": {"schedule": "baseline", "prune_first_conv": True},
            "accuracy_aware_training": {
                "maximal_accuracy_degradation": 100.0,
                "initial_training_phase_epochs": 1,
                "patience_epochs": 1,
                "maximal_total_epochs": 2,
            },
        }
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compressed.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    callback = tf_aat.AccuracyAwareCallback(
        ctrl, config, 1.0, verbose=0, validation_data=(x_val, y_val)
    )
    compressed.fit(
        x_train, y_train, validation_data=(x_val, y_val), epochs=2, verbose=0, callbacks=[callback]
    )
    stripped = ctrl.strip_model(compressed)
    stripped.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    expected = stripped.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert stripped.count_params() < compressed.count_params()
    assert callback.result.stripped_metric == pytest.approx(expected, abs=1e-9)


def test_a_controller_without_strip_leaves_it_unmeasured():
    from .fakes import FakeController, make_model

    model, layer = make_model()
    ctrl = FakeController(layer, [0.0, 0.5], maximal_compression_rate=0.5)
    loop = tf_aat.create_accuracy_aware_training_loop(
        {
            "accuracy_aware_training": {
                "mode": "early_exit",
                "params": {
                    "maximal_absolute_accuracy_degradation": 1.0,
                    "maximal_total_epochs": 1,
                },
            }
        },
        ctrl,
        1.0,
        verbose=0,
    )
    loop.run(model, lambda *a, **k: None, lambda model, epoch: np.float32(0.5))
    assert loop.result.stripped_metric is None
