"""One worker of a two-worker MultiWorkerMirroredStrategy run of the digits search.

    TF_CONFIG=... python tests/distribute/multi_worker_script.py LOG_DIR RESULT_JSON \\
        [--driver=runner|callback] [--resume] [--crash_at=EPOCH]

`--driver=runner` trains with the standalone loop and a custom `strategy.run` step
(each worker feeds its half of every global batch); `--driver=callback` runs
`model.fit` with the accuracy-aware callback; `--driver=plain_fit` runs Keras's `fit`
without any tf_aat callback (Keras's own multi-worker failure). `--crash_at` ends the process abruptly (os._exit, as a
kill would) when the search is about to train that epoch.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import tensorflow as tf  # noqa: E402

# Created first: collective ops must be configured before TensorFlow runs anything.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_aat  # noqa: E402
from tests.distribute import digits  # noqa: E402


def main(log_dir, result_path, driver="runner", resume=False, crash_at=None):
    resolver = STRATEGY.cluster_resolver
    task = resolver.task_id
    workers = STRATEGY.num_replicas_in_sync
    (x, y), (x_val, y_val) = digits.load_digits(train=512, validation=256)
    baseline = digits.baseline_weights(x, y)  # the same on every worker (seeded, local)
    uncompressed = baseline.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    keras.utils.set_random_seed(1)
    config = tf_aat.CompressionConfig.from_dict(digits.CONFIG)
    with STRATEGY.scope():
        model = digits.make_model(synchronized=False)
        model.set_weights(baseline.get_weights())
        ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=x[:128])
        digits.compile_model(compressed)

    def crash_if_asked(epoch):
        if crash_at is not None and epoch == crash_at:
            sys.stdout.flush()
            os._exit(17)

    # The runner's custom training step (the callback driver uses Keras's fit).
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    with STRATEGY.scope():
        compressed.optimizer.build(compressed.trainable_variables)

    @tf.function
    def train_step(x_part, y_part):
        def replica_step(x_part, y_part):
            with tf.GradientTape() as tape:
                loss = loss_fn(y_part, compressed(x_part, training=True)) / digits.BATCH_SIZE
            variables = compressed.trainable_variables
            compressed.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        losses = STRATEGY.run(replica_step, args=(x_part, y_part))
        return STRATEGY.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def train_epoch_fn(compression_ctrl, model, epoch, optimizer, lr_scheduler):
        crash_if_asked(epoch)
        losses = []
        for start in range(0, len(x), digits.BATCH_SIZE):
            rows = slice(start + task, start + digits.BATCH_SIZE, workers)  # this worker's half
            losses.append(float(train_step(x[rows], y[rows])))
        return float(np.mean(losses))

    def validate_fn(model, epoch):
        logits = keras.ops.convert_to_numpy(model(x_val, training=False))
        return float(np.mean(np.argmax(logits, -1) == y_val))

    if driver == "runner":
        loop = tf_aat.create_accuracy_aware_training_loop(config, ctrl, uncompressed, verbose=0)
        loop.run(
            compressed,
            train_epoch_fn,
            validate_fn,
            configure_optimizers_fn=lambda: (compressed.optimizer, None),
            log_dir=log_dir,
            resume=resume,
        )
        result = loop.result
    elif driver == "callback":
        # Keras's own fit, with the accuracy-aware callback (tf_aat mends Keras's fit
        # for MultiWorkerMirroredStrategy when the callback is created there).
        callback = tf_aat.AccuracyAwareCallback(
            ctrl, config, uncompressed, log_dir=log_dir, resume=resume, verbose=0
        )

        class CrashIfAsked(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                crash_if_asked(callback.driver.search.epochs_trained)

        compressed.fit(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(digits.BATCH_SIZE),
            validation_data=tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(
                digits.BATCH_SIZE
            ),
            epochs=10,
            verbose=0,
            callbacks=[callback, CrashIfAsked()],
        )
        result = callback.result
    else:  # plain_fit: Keras alone, without tf_aat's mend (the upstream failure)
        keras.config.disable_traceback_filtering()  # the test reads where fit fails
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(digits.BATCH_SIZE)
        compressed.fit(dataset, epochs=1, verbose=0)
        print("model.fit trained under MultiWorkerMirroredStrategy", flush=True)
        return
    np.savez(result_path + ".weights.npz", *compressed.get_weights())
    with open(result_path, "w", encoding="utf-8") as file:
        json.dump(
            {
                "task": task,
                "workers": workers,
                "final_rate": result.compression_rate,
                "ctrl_rate": float(ctrl.compression_rate),
                "rates": [row["rate"] for row in result.history],
                "metrics": [row["metric"] for row in result.history],
                "accuracy": validate_fn(compressed, None),
                "masks": {
                    v.path: v.numpy().tolist()
                    for v in compressed.non_trainable_variables
                    if v.path.endswith("/mask")
                },
            },
            file,
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    options = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "1") for a in args[2:])
    main(
        args[0],
        args[1],
        driver=options.get("driver", "runner"),
        resume="resume" in options,
        crash_at=int(options["crash_at"]) if "crash_at" in options else None,
    )
