"""The main job: accuracy-aware compression of an image classifier, end to end.

Trains (or loads a cached) baseline, measures its accuracy, searches the
highest compression rate within the config's accuracy budget (Keras callback
or loop runner), strips the pruned filters, exports TFLite, evaluates it, and
writes a report (summary.md, metrics.json, the search plot) into --log_dir.
The tf_aat calls are in `main` and `search`; the data, models and training
recipes are in examples/data.py, models.py and training.py, the report in
examples/job_report.py.

    python -m examples.compress                      # digits, offline, ~20 s on 2 cores
    python -m examples.compress --dataset=cifar10 --cifar10_path=../shared/data/cifar10_jpeg.npz \
        --model=resnet20 --config=examples/configs/cifar10_resnet20_pruning_adaptive.json
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import data, job_report, models, strategies, training  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config", os.path.join(_HERE, "configs", "digits_pruning_int8_adaptive.json"), "JSON config."
)
flags.DEFINE_enum("dataset", "digits", list(data.DATASETS), "Dataset.")
flags.DEFINE_string("cifar10_path", None, "CIFAR-10 .npz archive; empty: keras.datasets (online).")
flags.DEFINE_enum("model", "small_cnn", list(models.MODELS), "Model to build.")
flags.DEFINE_integer("baseline_epochs", 30, "Epochs to train the uncompressed baseline.")
flags.DEFINE_integer("epochs", None, "Upper bound on compression epochs (default: the config's).")
flags.DEFINE_integer("batch_size", None, "Batch size (default: the config's, else 64).")
flags.DEFINE_enum("optimizer", "adam", list(training.OPTIMIZERS), "Adam, or SGD with momentum.")
flags.DEFINE_float("learning_rate", 1e-3, "Baseline learning rate (cosine-decayed with SGD).")
flags.DEFINE_float(
    "finetune_learning_rate", None, "Learning rate while compressing (default: --learning_rate)."
)
flags.DEFINE_float("weight_decay", None, "Decoupled weight decay (e.g. 5e-4 with SGD).")
flags.DEFINE_bool(
    "distill",
    False,
    "Fine-tune as the student of the baseline (keras.distillation.Distiller, temperature 4).",
)
flags.DEFINE_bool("augment", False, "Random flips and crops (CIFAR-10) while training.")
flags.DEFINE_integer("train_limit", None, "Use only this many training images.")
flags.DEFINE_integer("test_limit", None, "Use only this many test images.")
flags.DEFINE_integer(
    "validation_images",
    0,
    "Hold out this many training images (a seeded random choice) as the search's validation "
    "set; the test images are then scored only once, at the end. 0: the search validates on "
    "the test images, as NNCF's examples do.",
)
# --log_dir is absl's own flag (it also receives absl's log files); default below.
DEFAULT_LOG_DIR = "runs/compress"
flags.DEFINE_string("baseline", None, "Cached baseline .keras (default: <log_dir>/baseline.keras).")
flags.DEFINE_enum(
    "driver", "callback", ["callback", "runner"], "Drive the search by callback or runner."
)
flags.DEFINE_enum(
    "strategy",
    "default",
    list(strategies.STRATEGIES),
    "tf.distribute strategy: one device; mirrored (the GPUs of this machine); "
    "multi_worker (the machines in TF_CONFIG).",
)
flags.DEFINE_integer(
    "cpu_devices", 0, "Split the CPU into this many logical devices (try --strategy=mirrored)."
)
flags.DEFINE_bool("resume", False, "Continue a killed search from --log_dir.")
flags.DEFINE_bool("export", True, "Export the stripped model to int8 TFLite and evaluate it.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0, 1 or 2).")


def hold_out(x_train, y_train, count, seed):
    """(train, validation): `count` training images drawn at random (seeded) for validation."""
    if not 0 < count < len(x_train):
        raise ValueError(
            f"--validation_images must be between 1 and {len(x_train) - 1} (there are "
            f"{len(x_train)} training images). Received: {count}. Pass 0 to validate on "
            "the test images, or a smaller count."
        )
    order = np.random.default_rng(seed).permutation(len(x_train))
    keep, held = np.sort(order[count:]), np.sort(order[:count])
    return (x_train[keep], y_train[keep]), (x_train[held], y_train[held])


def baseline_model(x_train, y_train, x_test, y_test, batch_size, chief=True):
    path = FLAGS.baseline or os.path.join(FLAGS.log_dir, "baseline.keras")
    if not chief and not os.path.exists(path):
        # Trained on every worker alike (seeded); only the chief's copy is kept.
        path = os.path.join(tempfile.mkdtemp(), "baseline.keras")
    cached = os.path.exists(path)
    model = training.load_or_train(
        path,
        lambda: models.MODELS[FLAGS.model](input_shape=x_train.shape[1:], classes=10),
        (x_train, y_train),
        (x_test, y_test),
        epochs=FLAGS.baseline_epochs,
        batch_size=batch_size,
        optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate,
        weight_decay=FLAGS.weight_decay,
        augment=FLAGS.augment,
        seed=FLAGS.seed,
        verbose=FLAGS.verbose,
    )
    return model, path, cached


def search(ctrl, compressed, teacher, config, baseline_accuracy, train, test, batch_size, strategy):
    params = config.accuracy_aware_training
    if params is None:
        raise ValueError(
            "The config has no `accuracy_aware_training` section, so there is nothing to "
            f"search. Received: --config={FLAGS.config!r}"
        )
    epochs = FLAGS.epochs or params.maximal_total_epochs
    search_dir = os.path.join(FLAGS.log_dir, "search")
    # With --distill, fit() trains the Distiller, whose student is `compressed`.
    trainer = training.distiller(teacher, compressed) if FLAGS.distill else compressed
    with strategy.scope():  # the optimizer's variables belong to the strategy too
        training.compile_classifier(
            trainer,
            FLAGS.finetune_learning_rate or FLAGS.learning_rate,
            FLAGS.optimizer,
            weight_decay=FLAGS.weight_decay,
        )
    train_data = training.train_data(train[0], train[1], batch_size, FLAGS.augment, FLAGS.seed)
    if FLAGS.driver == "callback":
        callback = tf_aat.AccuracyAwareCallback(
            ctrl,
            config,
            uncompressed_model_accuracy=baseline_accuracy,
            monitor="val_accuracy",
            log_dir=search_dir,
            resume=FLAGS.resume,
        )
        trainer.fit(
            train_data,
            epochs=epochs,
            shuffle=False,  # the dataset shuffles itself, every epoch
            validation_data=test,
            callbacks=[callback],
            verbose=FLAGS.verbose,
        )
        return compressed, callback.result

    if strategies.is_multi_worker(strategy):
        train_epoch = strategies.epoch_trainer(
            strategy,
            trainer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none"),
        )
    else:

        def train_epoch(dataset):
            trainer.fit(dataset, epochs=1, shuffle=False, verbose=FLAGS.verbose)

    def train_epoch_fn(compression_ctrl, model, epoch, optimizer, lr_scheduler):
        return train_epoch(train_data)

    def validate_fn(model, epoch):
        return training.accuracy(model, test[0], test[1], batch_size)

    loop = tf_aat.create_accuracy_aware_training_loop(
        config, ctrl, baseline_accuracy, verbose=int(strategies.is_chief(strategy))
    )
    model = loop.run(
        compressed,
        train_epoch_fn,
        validate_fn,
        configure_optimizers_fn=lambda: (trainer.optimizer, None),
        log_dir=search_dir,
        resume=FLAGS.resume,
    )
    return model, loop.result


def main(argv):
    del argv
    FLAGS.log_dir = FLAGS.log_dir or DEFAULT_LOG_DIR
    if FLAGS.strategy != "default" and FLAGS.distill:
        raise ValueError(
            "--distill runs on one device only (the Distiller is not tested under "
            f"tf.distribute). Received: --strategy={FLAGS.strategy} --distill"
        )
    # First: logical devices and multi-worker collectives are set up before TF runs.
    strategy = strategies.make(FLAGS.strategy, FLAGS.cpu_devices)
    chief = strategies.is_chief(strategy)
    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.log_dir, exist_ok=True)
    started = time.time()
    config = tf_aat.CompressionConfig.from_json(FLAGS.config)  # fails before any training
    batch_size = FLAGS.batch_size or config.get("batch_size") or 64
    (x_train, y_train), (x_test, y_test) = data.load(
        FLAGS.dataset, FLAGS.cifar10_path, FLAGS.train_limit, FLAGS.test_limit
    )
    held_out = FLAGS.validation_images > 0
    if held_out:
        (x_train, y_train), (x_val, y_val) = hold_out(
            x_train, y_train, FLAGS.validation_images, FLAGS.seed
        )
    else:
        x_val, y_val = x_test, y_test
    model, baseline_path, baseline_cached = baseline_model(
        x_train, y_train, x_val, y_val, batch_size, chief
    )
    baseline_accuracy = training.accuracy(model, x_val, y_val, batch_size)
    print(f"Baseline accuracy: {baseline_accuracy:.4f}")

    if strategy.num_replicas_in_sync > 1:
        print(
            f"Training with {type(strategy).__name__} on {strategy.num_replicas_in_sync} replicas"
        )
    with strategy.scope():  # the compressed model's variables belong to the strategy
        ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=x_train[:512])
    compressed, result = search(
        ctrl,
        compressed,
        model,
        config,
        baseline_accuracy,
        (x_train, y_train),
        (x_val, y_val),
        batch_size,
        strategy,
    )
    if not chief:
        print(
            f"Search finished on this worker at rate {result.compression_rate}; the chief "
            f"writes the report and the models into {FLAGS.log_dir}."
        )
        return
    metrics = job_report.write(
        ctrl,
        compressed,
        model,
        result,
        train=(x_train, y_train),
        validation=(x_val, y_val),
        test=(x_test, y_test) if held_out else None,
        batch_size=batch_size,
        log_dir=FLAGS.log_dir,
        export=FLAGS.export,
        facts={
            "dataset": FLAGS.dataset,
            "config": os.path.relpath(FLAGS.config),
            "test_images": len(x_test),
            "baseline_was_cached": baseline_cached,
            "baseline_recipe": training.baseline_recipe(baseline_path),
            "baseline_accuracy": baseline_accuracy,
            "distilled": FLAGS.distill,
            "baseline_path": baseline_path,
        },
        started=started,
    )
    print(job_report.headline(metrics, FLAGS.log_dir))


if __name__ == "__main__":
    app.run(main)
