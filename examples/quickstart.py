"""The README's quickstart as a script: needs only `tf_aat` (installed) and scikit-learn.

Trains a small CNN on scikit-learn's bundled 8x8 digits, searches the highest
filter-pruning rate within a 2% accuracy budget with the Keras callback inside
one `model.fit`, strips the pruned filters and prints the result. About half a
minute on 2 CPU cores. Run it from anywhere:

    python examples/quickstart.py
"""

import keras
import numpy as np
from sklearn.datasets import load_digits

import tf_aat


def load_data(seed=0):
    """Digits as (8, 8, 1) floats in [0, 1]: three quarters to train, a quarter to validate."""
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.75 * len(x))
    return (x[order[:split]], y[order[:split]]), (x[order[split:]], y[order[split:]])


def small_cnn():
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for index, filters in enumerate((16, 32, 32)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        if index < 2:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def main():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_val, y_val) = load_data()
    model = small_cnn()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    baseline = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]

    config = tf_aat.CompressionConfig.from_dict(
        {
            "compression": {
                "algorithm": "filter_pruning",
                "pruning_init": 0.1,
                "params": {
                    "schedule": "exponential",
                    "pruning_target": 0.3,
                    "pruning_steps": 2,
                    "prune_first_conv": True,
                },
                "accuracy_aware_training": {
                    "maximal_accuracy_degradation": 2.0,  # percent of the baseline accuracy
                    "initial_training_phase_epochs": 2,
                    "patience_epochs": 1,
                    "maximal_total_epochs": 6,
                },
            }
        }
    )
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compressed.compile("adam", loss, metrics=["accuracy"])
    callback = tf_aat.AccuracyAwareCallback(
        ctrl, config, uncompressed_model_accuracy=baseline, monitor="val_accuracy", verbose=0
    )
    compressed.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=6,
        batch_size=64,
        callbacks=[callback],
        verbose=0,
    )
    stripped = ctrl.strip_model(compressed)  # plain Keras layers, pruned filters removed
    accuracy = float(np.mean(np.argmax(stripped.predict(x_val, verbose=0), -1) == y_val))
    print(callback.result)
    print(
        f"quickstart: baseline accuracy {baseline:.4f}, stripped accuracy {accuracy:.4f}, "
        f"compression rate {ctrl.compression_rate:.3f}, parameters "
        f"{model.count_params():,} -> {stripped.count_params():,}"
    )


if __name__ == "__main__":
    main()
