"""A real, short accuracy-aware run: digits, model.fit and filter pruning."""

import keras
import numpy as np
import pytest

import tf_aat
from tf_aat.accuracy_aware import AccuracyAwareCallback

datasets = pytest.importorskip("sklearn.datasets")


def load_digits():
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # 8x8x1
    labels = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    return (images[:1400], labels[:1400]), (images[1400:], labels[1400:])


def make_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs)


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def test_digits_filter_pruning_with_callback(tmp_path):
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_val, y_val) = load_digits()
    model = make_model()
    compile_model(model)
    model.fit(x_train, y_train, batch_size=64, epochs=15, verbose=0)
    uncompressed = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert uncompressed > 0.7

    config = tf_aat.CompressionConfig.from_dict(
        {
            "compression": {
                "algorithm": "filter_pruning",
                "pruning_init": 0.1,
                "params": {
                    "schedule": "baseline",
                    "pruning_target": 0.2,
                    "prune_first_conv": True,
                },
                "accuracy_aware_training": {
                    "maximal_accuracy_degradation": 5.0,
                    "initial_training_phase_epochs": 1,
                    "patience_epochs": 1,
                    "compression_rate_step": 0.2,
                    "minimal_compression_rate_step": 0.1,
                    "maximal_total_epochs": 6,
                },
            }
        }
    )
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compile_model(compressed)
    callback = AccuracyAwareCallback(
        ctrl, config, uncompressed, monitor="val_accuracy", log_dir=str(tmp_path), verbose=0
    )
    compressed.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=64,
        epochs=20,
        verbose=0,
        callbacks=[callback],
    )
    result = callback.result
    assert result is not None and 2 <= result.epochs <= 6
    assert result.history[0]["rate"] == pytest.approx(0.2)  # the baseline schedule
    # The model left in place is the one the result describes.
    assert ctrl.compression_rate == result.compression_rate
    accuracy = compressed.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(result.compressed_metric, abs=1e-6)
    if result.criterion_met:
        assert accuracy >= result.accuracy_budget - 1e-6
        assert result.compression_rate >= 0.2
    assert (tmp_path / "accuracy_aware_summary.txt").exists()
