"""Trains the digits task twice, on one device and with MirroredStrategy over two logical
CPU devices, and prints what the test compares as one JSON line.

    python tests/distribute/mirrored_script.py OUT_DIR

Run in a fresh process: logical devices can only be set before TensorFlow starts.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_aat  # noqa: E402
from tests.distribute import digits  # noqa: E402


class ReplicaAgreement(keras.callbacks.Callback):
    """After every epoch (and the search's decision), the largest difference between
    replicas of each non-trainable variable: masks, ranges, BN statistics."""

    def __init__(self, trainable=False):
        super().__init__()
        self.worst = {}
        self.trainable = trainable

    def on_epoch_end(self, epoch, logs=None):
        variables = self.model.weights if self.trainable else self.model.non_trainable_variables
        for variable in variables:
            values = digits.replica_values(variable)
            spread = max(float(np.max(np.abs(v - values[0]))) for v in values)
            self.worst[variable.path] = max(self.worst.get(variable.path, 0.0), spread)


def run(strategy, baseline, train, validation, log_dir):
    (x, y), (x_val, y_val) = train, validation
    keras.utils.set_random_seed(1)
    config = tf_aat.CompressionConfig.from_dict(digits.CONFIG)
    with strategy.scope():
        model = digits.make_model()
        model.set_weights(baseline.get_weights())
        ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=x[:128])
        digits.compile_model(compressed)
    uncompressed = baseline.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    callback = tf_aat.AccuracyAwareCallback(
        ctrl, config, uncompressed, monitor="val_accuracy", log_dir=log_dir, verbose=0
    )
    agreement = ReplicaAgreement()
    compressed.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        batch_size=digits.BATCH_SIZE,
        epochs=10,
        shuffle=False,
        verbose=0,
        callbacks=[callback, agreement],
    )
    result = callback.result
    return (
        ctrl,
        compressed,
        {
            "rates": [row["rate"] for row in result.history],
            "metrics": [row["metric"] for row in result.history],
            "final_rate": result.compression_rate,
            "criterion_met": result.criterion_met,
            "accuracy": compressed.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"],
            "predictions": compressed.predict(x_val[:64], verbose=0).tolist(),
            "replica_spread": agreement.worst,
            "ctrl_rate": float(ctrl.compression_rate),
            "num_replicas": strategy.num_replicas_in_sync,
        },
    )


def plain_batch_norm(strategy, train):
    """Replica agreement with an unsynchronised BatchNormalization (each replica's batch
    statistics differ; the wrapper averages the moving statistics it writes back)."""
    (x, y) = train
    config = tf_aat.CompressionConfig.from_dict(digits.CONFIG)
    with strategy.scope():
        ctrl, model = tf_aat.create_compressed_model(
            digits.make_model(synchronized=False), config, init_data=x[:128]
        )
        digits.compile_model(model)
    agreement = ReplicaAgreement()
    model.fit(
        x[:256],
        y[:256],
        batch_size=digits.BATCH_SIZE,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[tf_aat.CompressionCallback(ctrl), agreement],
    )
    return agreement.worst


SPARSITY = {
    "magnitude_sparsity": {
        "algorithm": "magnitude_sparsity",
        "sparsity_init": 0.2,
        "params": {"schedule": "polynomial", "sparsity_target": 0.5, "sparsity_target_epoch": 1},
    },
    "rb_sparsity": {
        "algorithm": "rb_sparsity",
        "sparsity_init": 0.2,
        "params": {"sparsity_target": 0.5, "sparsity_target_epoch": 1},
    },
}


def sparsity(strategy, train):
    """Each sparsity algorithm (with quantization) for two short epochs: the largest
    difference between replicas of its masks (magnitude's 0/1, RB's trained logits)."""
    (x, y) = train
    spreads = {}
    for name, section in SPARSITY.items():
        with strategy.scope():
            ctrl, model = tf_aat.create_compressed_model(
                digits.make_model(), {"compression": [section, {"algorithm": "quantization"}]}
            )
            digits.compile_model(model)
        agreement = ReplicaAgreement(trainable=True)
        model.fit(
            x[:128],
            y[:128],
            batch_size=digits.BATCH_SIZE,
            epochs=2,
            verbose=0,
            callbacks=[tf_aat.CompressionCallback(ctrl), agreement],
        )
        spreads[name] = {
            "rate": float(ctrl.compression_rate),
            "masks": {k: v for k, v in agreement.worst.items() if k.endswith("/mask")},
        }
    return spreads


def misuse(strategy, train):
    """What a user gets for a model created outside the scope: the error messages."""
    (x, y) = train
    config = tf_aat.CompressionConfig.from_dict(digits.CONFIG)
    errors = {}
    ctrl, model = tf_aat.create_compressed_model(digits.make_model(), config)
    with strategy.scope():
        digits.compile_model(model)  # compiled inside, created outside
    try:
        model.fit(x[:64], y[:64], epochs=1, verbose=0, callbacks=[tf_aat.CompressionCallback(ctrl)])
        errors["compiled_inside_fit"] = None
    except ValueError as error:
        errors["compiled_inside_fit"] = str(error)
    for name, make in (
        ("compression_callback", lambda: tf_aat.CompressionCallback(ctrl)),
        (
            "accuracy_aware_callback",
            lambda: tf_aat.AccuracyAwareCallback(ctrl, config, 0.9, verbose=0),
        ),
    ):
        try:
            with strategy.scope():
                make()
            errors[name] = None
        except ValueError as error:
            errors[name] = str(error)
    return errors


def main(out_dir):
    train, validation = digits.load_digits()
    baseline = digits.baseline_weights(*train)
    single_strategy = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    _, single_model, single = run(
        single_strategy, baseline, train, validation, os.path.join(out_dir, "single")
    )
    ctrl, model, distributed = run(
        mirrored, baseline, train, validation, os.path.join(out_dir, "mirrored")
    )
    x_val = validation[0][:64]

    # The distributed model's weights in a model built on one device, as a reference.
    config = tf_aat.CompressionConfig.from_dict(digits.CONFIG)
    _, reference = tf_aat.create_compressed_model(digits.make_model(), config)
    reference.set_weights(model.get_weights())
    outputs = {}
    stripped_outside = tf_aat.strip_model(model)
    with mirrored.scope():
        stripped_inside = tf_aat.strip_model(model)
    stripped_reference = tf_aat.strip_model(reference)
    for name, stripped in (
        ("outside", stripped_outside),
        ("inside", stripped_inside),
        ("reference", stripped_reference),
    ):
        outputs[name] = stripped.predict(x_val, verbose=0).tolist()
    files = {}
    for name, source, in_scope in (
        ("outside", model, False),
        ("inside", model, True),
        ("reference", reference, False),
    ):
        path = os.path.join(out_dir, f"{name}.tflite")
        if in_scope:
            with mirrored.scope():
                tf_aat.export_tflite(source, path, representative_data=x_val)
        else:
            tf_aat.export_tflite(source, path, representative_data=x_val)
        files[name] = digits.tflite_summary(path, x_val)
    with open(os.path.join(out_dir, "outside.tflite"), "rb") as file:
        outside_bytes = file.read()
    with open(os.path.join(out_dir, "inside.tflite"), "rb") as file:
        files["inside_equals_outside"] = file.read() == outside_bytes
    print(
        json.dumps(
            {
                "plain_batch_norm_spread": plain_batch_norm(mirrored, train),
                "misuse": misuse(mirrored, train),
                "sparsity": sparsity(mirrored, train),
                "stripped_outside_distributed": type(stripped_outside.weights[0].value).__name__,
                "single": single,
                "mirrored": distributed,
                "stripped_outputs": outputs,
                "stripped_inside_distributed": type(stripped_inside.weights[0].value).__name__,
                "tflite": files,
                "single_weights_vs_mirrored": float(
                    max(
                        np.max(np.abs(a - b))
                        for a, b in zip(single_model.get_weights(), model.get_weights())
                    )
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
