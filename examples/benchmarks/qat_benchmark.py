"""8-bit QAT cost and payoff: training-step time, TFLite latency and size of ResNet-20.

Training-step time (ResNet-20, 32x32x3, one `train_on_batch` step, median
over interleaved rounds after warm-up, all in one process):

- `keras3_float` vs `tf_aat_qat` (the target: QAT at most 1.2x float);
- if `tensorflow_model_optimization` and `tf_keras` import: `tf_keras_float`
  vs `tfmot_qat` on the same architecture, the side-by-side baseline
  (`pip install tensorflow-model-optimization tf-keras`).

Deployment: the float and the int8 TFLite files of ResNet-20 (batch 1, one
thread, LiteRT's default XNNPACK delegate): median latency and file size.

    python -m examples.benchmarks.qat_benchmark                 # ~3 min on 2 cores
    python -m examples.benchmarks.qat_benchmark --rounds=5 --steps_per_round=10

Random inputs are enough: step time and latency do not depend on the data.
Prints a table and writes JSON to --output.
"""

import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import models  # noqa: E402
from tf_aat._export import export_tflite, make_interpreter  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps per variant before timing (tracing).")
flags.DEFINE_integer("rounds", 3, "Interleaved rounds; each times every variant in turn.")
flags.DEFINE_integer("steps_per_round", 5, "Timed steps per variant per round.")
flags.DEFINE_integer("latency_runs", 100, "Timed TFLite invocations per model.")
flags.DEFINE_bool("tfmot", True, "Include the tf_keras / TF-MOT baseline when installed.")
flags.DEFINE_string("output", "qat_benchmark.json", "Where to write the JSON results.")

CLASSES = 10
INPUT_SHAPE = (32, 32, 3)


def resnet20(k):
    """The examples' ResNet-20, built with `k` (`keras` or `tf_keras`)."""
    return models.resnet20(INPUT_SHAPE, CLASSES, keras_module=k)


def _compile(model, k):
    model.compile(
        optimizer=k.optimizers.SGD(0.01, momentum=0.9),
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def build_variants(x):
    """name -> model, ready for `train_on_batch`."""
    keras.utils.set_random_seed(0)
    float_model = resnet20(keras)
    config = {
        "compression": {
            "algorithm": "quantization",
            "initializer": {"range": {"num_init_samples": 128}},
        }
    }
    _, qat_model = tf_aat.create_compressed_model(float_model, config, init_data=x[:128])
    variants = {
        "keras3_float": _compile(resnet20(keras), keras),
        "tf_aat_qat": _compile(qat_model, keras),
    }
    baseline_note = None
    if FLAGS.tfmot:
        try:
            import tensorflow_model_optimization as tfmot
            import tf_keras
        except ImportError as error:
            baseline_note = (
                f"TF-MOT baseline skipped ({error}); install it with "
                "`pip install tensorflow-model-optimization tf-keras`"
            )
        else:
            tf_keras.utils.set_random_seed(0)
            variants["tf_keras_float"] = _compile(resnet20(tf_keras), tf_keras)
            variants["tfmot_qat"] = _compile(
                tfmot.quantization.keras.quantize_model(resnet20(tf_keras)), tf_keras
            )
    return float_model, qat_model, variants, baseline_note


def time_training(variants, x, y):
    """Median seconds per training step for each variant, interleaved to share drift."""
    for model in variants.values():
        for _ in range(FLAGS.warmup_steps):
            model.train_on_batch(x, y)
    times = {name: [] for name in variants}
    for _ in range(FLAGS.rounds):
        for name, model in variants.items():
            for _ in range(FLAGS.steps_per_round):
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def tflite_latency(path):
    interpreter = make_interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    sample = np.random.default_rng(0).uniform(0, 1, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], sample)
    for _ in range(10):
        interpreter.invoke()
    runs = []
    for _ in range(FLAGS.latency_runs):
        start = time.perf_counter()
        interpreter.invoke()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (FLAGS.batch_size, *INPUT_SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, FLAGS.batch_size)
    float_model, qat_model, variants, baseline_note = build_variants(x)
    step_times = time_training(variants, x, y)

    directory = tempfile.mkdtemp(prefix="qat_benchmark_")
    float_export = export_tflite(
        float_model, os.path.join(directory, "float.tflite"), batch_size=1, quantize=False
    )
    int8_export = export_tflite(
        qat_model,
        os.path.join(directory, "int8.tflite"),
        batch_size=1,
        verify_data=x[:64],
        raise_on_mismatch=False,
    )
    deployment = {}
    for name, export in (("float", float_export), ("int8", int8_export)):
        deployment[name] = {
            "latency_ms": 1000 * tflite_latency(export.path),
            "size_bytes": export.size_bytes,
        }

    results = {
        "batch_size": FLAGS.batch_size,
        "rounds": FLAGS.rounds,
        "steps_per_round": FLAGS.steps_per_round,
        "train_step_seconds": step_times,
        "qat_over_float": step_times["tf_aat_qat"] / step_times["keras3_float"],
        "tflite": deployment,
        "int8_speedup": deployment["float"]["latency_ms"] / deployment["int8"]["latency_ms"],
        "int8_size_ratio": deployment["int8"]["size_bytes"] / deployment["float"]["size_bytes"],
        "int8_float_ops": len(int8_export.float_ops),
        "int8_verification": int8_export.verification,
    }
    if "tfmot_qat" in step_times:
        results["tfmot_over_tf_keras"] = step_times["tfmot_qat"] / step_times["tf_keras_float"]
    if baseline_note:
        results["note"] = baseline_note

    print(
        f"\nResNet-20 training step (batch {FLAGS.batch_size}, median of "
        f"{FLAGS.rounds * FLAGS.steps_per_round} interleaved steps)"
    )
    print(f"  {'variant':<16} {'ms/step':>10}")
    for name, seconds in step_times.items():
        print(f"  {name:<16} {1000 * seconds:>10.1f}")
    print(f"  tf_aat QAT / Keras 3 float: {results['qat_over_float']:.3f}x (target <= 1.2x)")
    if "tfmot_over_tf_keras" in results:
        print(f"  TF-MOT QAT / tf_keras float: {results['tfmot_over_tf_keras']:.3f}x")
    if baseline_note:
        print(f"  {baseline_note}")
    print("\nResNet-20 TFLite (batch 1, 1 thread, XNNPACK)")
    print(f"  {'model':<8} {'latency ms':>11} {'size KB':>10}")
    for name, row in deployment.items():
        print(f"  {name:<8} {row['latency_ms']:>11.3f} {row['size_bytes'] / 1024:>10.1f}")
    print(
        f"  int8 speed-up {results['int8_speedup']:.2f}x, size {results['int8_size_ratio']:.2f}x, "
        f"float conv/FC ops in int8 model: {results['int8_float_ops']}"
    )
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"\nWrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
