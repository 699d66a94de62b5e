"""Sparse + int8 ResNet-20 on CIFAR-10: the level the search found within 1%, as TFLite files.

Reads a finished main job (`examples/compress.py`) run with
`examples/configs/cifar10_resnet20_sparsity_int8.json` (magnitude sparsity +
int8 QAT, the accuracy-aware search over the sparsity level, 1% budget) from
--job_dir, and compares three int8 files side by side:

- `dense int8`: the job's baseline with int8 quantization only (ranges set on
  512 training images, no fine-tuning), the file a user has without sparsity;
- `sparse, dense storage`: the searched model (the job's stripped model)
  exported as usual, the zeros stored like any other weight;
- `sparse, sparse storage`: the same model with
  `tf_aat.export_tflite(..., sparse_weights=True)` (the converter's
  EXPERIMENTAL_SPARSITY encoding).

For each: accuracy on the 10,000 test images (LiteRT, one image at a time),
file size, and batch-1 latency on one thread with the default XNNPACK path
and with TFLite's builtin kernels, all files timed interleaved in one process
(read the ratios; this machine is shared).

    python -m examples.compress --dataset=cifar10 --cifar10_path=../shared/data/cifar10_jpeg.npz \
        --model=resnet20 --config=examples/configs/cifar10_resnet20_sparsity_int8.json \
        --optimizer=sgd --learning_rate=0.1 --finetune_learning_rate=0.002 \
        --weight_decay=5e-4 --augment --baseline_epochs=15 \
        --log_dir=runs/cifar10_resnet20_sparsity
    python -m examples.benchmarks.sparsity_cifar10_benchmark \
        --cifar10_path=../shared/data/cifar10_jpeg.npz --job_dir=runs/cifar10_resnet20_sparsity

Prints a table and writes JSON to --output.
"""

import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import data, tflite_eval  # noqa: E402
from examples.benchmarks._results import write_results  # noqa: E402
from examples.benchmarks._sparsity import zero_fraction  # noqa: E402
from examples.benchmarks._timing import BUILTIN, XNNPACK, interleaved_latencies  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("cifar10_path", None, "CIFAR-10 .npz archive (see DESIGN.md).")
flags.DEFINE_string("job_dir", "runs/cifar10_resnet20_sparsity", "A finished main job's --log_dir.")
flags.DEFINE_integer("calibration", 512, "Training images for the dense int8 file's ranges.")
flags.DEFINE_integer("test_limit", None, "Score only this many test images.")
flags.DEFINE_integer("rounds", 5, "Timing rounds (every file timed in each round, in turn).")
flags.DEFINE_integer("runs", 100, "Invocations per file per round.")
flags.DEFINE_string(
    "output",
    "examples/benchmarks/results/sparsity_cifar10.json",
    "Where to write the JSON results.",
)


def read_job(job_dir):
    path = os.path.join(job_dir, "metrics.json")
    if not os.path.exists(path):
        raise SystemExit(
            f"{path} not found: --job_dir must be the --log_dir of a finished "
            "examples.compress run (see this script's docstring for the command)."
        )
    with open(path, encoding="utf-8") as f:
        metrics = json.load(f)
    algorithms = metrics["statistics"]
    if "magnitude_sparsity" not in json.dumps(algorithms):
        raise SystemExit(
            f"{path} is from a job without sparsity (config {metrics.get('config')}); run "
            "the job with examples/configs/cifar10_resnet20_sparsity_int8.json."
        )
    return metrics


def main(argv):
    del argv
    if not FLAGS.cifar10_path:
        raise SystemExit("--cifar10_path is required (the CIFAR-10 .npz archive).")
    metrics = read_job(FLAGS.job_dir)
    (x_train, _), (x_test, y_test) = data.load(
        "cifar10", FLAGS.cifar10_path, test_limit=FLAGS.test_limit
    )
    baseline = keras.models.load_model(metrics["files"]["baseline"])
    searched = keras.models.load_model(metrics["files"]["stripped"])
    calibration = x_train[: FLAGS.calibration]
    _, quantized = tf_aat.create_compressed_model(
        baseline, {"compression": {"algorithm": "quantization"}}, init_data=calibration
    )
    dense_int8 = tf_aat.strip_model(quantized)
    variants = {
        "dense int8": (dense_int8, False),
        "sparse, dense storage": (searched, False),
        "sparse, sparse storage": (searched, True),
    }
    rows, files = [], {}
    with tempfile.TemporaryDirectory() as directory:
        for index, (name, (model, sparse)) in enumerate(variants.items()):
            path = os.path.join(directory, f"{index}.tflite")
            report = tf_aat.export_tflite(
                model,
                path,
                verify_data=x_test[:64],
                batch_size=1,
                sparse_weights=sparse,
                raise_on_mismatch=False,  # recorded; the test-set accuracy is the figure
            )
            # XNNPACK cannot prepare some sparse-encoded ops; score and time
            # those files on the builtin kernels, as export_tflite verified them.
            builtin = bool(report.delegate_error)
            rows.append(
                {
                    "name": name,
                    "zero_fraction": zero_fraction(model),
                    "encoding": "sparse" if sparse else "dense",
                    "size_bytes": report.size_bytes,
                    "int8": not report.float_ops,
                    "tflite_accuracy": tflite_eval.accuracy(path, x_test, y_test, builtin),
                    "keras_accuracy": float(
                        np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)
                    ),
                    "verification": report.verification,
                    "xnnpack_error": report.delegate_error,
                }
            )
            files[(name, BUILTIN)] = (path, BUILTIN)
            if not report.delegate_error:
                files[(name, XNNPACK)] = (path, XNNPACK)
        timed = interleaved_latencies(files, FLAGS.rounds, FLAGS.runs)
    reference = rows[0]
    for row in rows:
        for delegate in (XNNPACK, BUILTIN):
            seconds = timed.get((row["name"], delegate))
            row[f"latency_ms_{delegate}"] = None if seconds is None else 1000 * seconds
        row["size_vs_dense_int8"] = row["size_bytes"] / reference["size_bytes"]
        default = row["latency_ms_xnnpack"] or row["latency_ms_builtin"]
        row["speedup_vs_dense_int8"] = reference["latency_ms_xnnpack"] / default
    results = {
        "model": "resnet20",
        "dataset": "cifar10",
        "job": {
            key: metrics.get(key)
            for key in (
                "config",
                "baseline_accuracy",
                "accuracy_budget",
                "compression_rate",
                "criterion_met",
                "masked_accuracy",
                "compressed_accuracy",
                "tflite_accuracy",
                "epochs",
                "validation",
                "wall_seconds",
            )
        },
        "test_images": len(x_test),
        "calibration_images": len(calibration),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "rounds": FLAGS.rounds,
        "runs": FLAGS.runs,
        "rows": rows,
    }
    job = results["job"]
    print(
        f"\nSearch: sparsity level {job['compression_rate']:.3f}, accuracy "
        f"{job['baseline_accuracy']:.4f} -> {job['compressed_accuracy']:.4f} "
        f"(budget {job['accuracy_budget']:.4f}, met: {job['criterion_met']})\n"
    )
    print("file                    zeros  bytes    vs dense  TFLite acc  XNNPACK ms  builtin ms")
    for row in rows:
        xnn = row["latency_ms_xnnpack"]
        print(
            f"{row['name']:<22}  {row['zero_fraction']:5.3f}  {row['size_bytes']:<7d}  "
            f"{row['size_vs_dense_int8']:6.3f}x  {row['tflite_accuracy']:10.4f}  "
            f"{(f'{xnn:10.3f}' if xnn else 'fails'):>10}  {row['latency_ms_builtin']:10.3f}"
        )
    write_results(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
