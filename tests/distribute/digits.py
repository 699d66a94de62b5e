"""The digits task every distributed test trains: data, model and config (no TensorFlow
device setup here, so a worker script can import it after it configures its devices)."""

import os

import keras
import numpy as np

import tf_aat

# Pruning plus int8 QAT, searched with the seed's adaptive loop in a few epochs.
CONFIG = {
    "compression": [
        {
            "algorithm": "filter_pruning",
            "pruning_init": 0.2,
            "params": {
                "schedule": "baseline",
                "pruning_target": 0.2,
                "prune_first_conv": True,
                "filter_importance": "L2",
            },
            "accuracy_aware_training": {
                "maximal_accuracy_degradation": 10.0,
                "initial_training_phase_epochs": 1,
                "patience_epochs": 1,
                "compression_rate_step": 0.2,
                "minimal_compression_rate_step": 0.1,
                "maximal_total_epochs": 4,
            },
        },
        {"algorithm": "quantization", "preset": "mixed"},
    ]
}
BATCH_SIZE = 64  # the global batch: each of two replicas computes 32 of it


def load_digits(train=768, validation=256):
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:train], y[:train]), (x[train : train + validation], y[train : train + validation])


def make_model(synchronized=True):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized, name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    return keras.Model(inputs, outputs)


def compile_model(model, learning_rate=1e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def baseline_weights(x, y, epochs=10):
    """Weights of the uncompressed model, trained on one device with a fixed seed."""
    keras.utils.set_random_seed(0)
    model = make_model()
    compile_model(model, 1e-2)
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=False, verbose=0)
    return model


def replica_values(variable):
    """The value of `variable` on each replica (one entry when it is not distributed)."""
    value = getattr(variable, "value", variable)
    values = getattr(value, "values", None)
    if values is None:
        return [np.asarray(variable.numpy())]
    return [np.asarray(v.numpy()) for v in values]


def tflite_summary(path, x):
    """What a deployed file gives: its size, its ops and its outputs on `x`."""
    from tf_aat._export import make_interpreter, run_tflite

    interpreter = make_interpreter(model_path=path, delegates=False)
    return {
        "size": os.path.getsize(path),
        "ops": [op.op for op in tf_aat.tflite_ops(path)],
        "outputs": run_tflite(interpreter, [x])[0].tolist(),
    }
