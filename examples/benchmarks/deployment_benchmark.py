"""What compression buys at deployment: ResNet-20 on CIFAR-10 as TFLite files.

(--model=mobilenet_v2 runs the same on the depthwise-separable MobileNetV2-style
net of examples/models.py.)

Four models, all from one trained baseline (trained and cached by this
script, or passed with --baseline):

- `fp32`: the baseline, float TFLite;
- `pruned`: FPGM filter pruning to a FLOPs target (default 50% fewer FLOPs)
  with NNCF's exponential schedule, fine-tuned, stripped (filters removed),
  float TFLite. By default only the channels inside the residual blocks
  (the first conv of each block): the shortcut convs are in
  --ignored_scopes, which keeps the residual groups and the stem whole
  (--prune_first_conv --ignored_scopes= prunes every conv);
- `int8`: the baseline after a short 8-bit QAT fine-tune, int8 TFLite;
- `pruned_int8`: the pruned model after the same QAT fine-tune, int8 TFLite;
- `int8_ptq`: the baseline quantized after training by the TFLite converter
  (full-integer PTQ, calibrated on --calibration_images training images);
- `int8_ai_edge`: the baseline quantized after training by AI Edge Quantizer
  (static int8 recipe, same calibration images; needs `ai-edge-quantizer`,
  the `ptq` extra: without it the row is left out and the results say why).

The two PTQ rows are what a user would pick instead of QAT: they need no
training, so they are compared with `int8` on the same float model.
--variants picks the rows (fp32 is always measured: every ratio is to it);
`--variants=fp32,int8,int8_ptq,int8_ai_edge` skips the pruning fine-tune.

Every fine-tune is distilled from the fp32 baseline by default
(`keras.distillation.Distiller`; --nodistill trains on the labels only).

For each: test accuracy of the TFLite file on the test images (10,000 by
default), its top-1 agreement with the fp32 Keras model there, file size,
latency at batch 1 on one thread (LiteRT, its default XNNPACK delegate; median
of interleaved rounds, so every model sees the same machine load) and
multiply-accumulates counted from the layer shapes.
Speed-ups are compared with the ideal the MAC count predicts.

    python -m examples.benchmarks.deployment_benchmark \
        --cifar10_path=../shared/data/cifar10_jpeg.npz --work_dir=runs/deployment

Every stage is cached in --work_dir (baseline, pruned model, TFLite files,
stage metrics), so a killed run continues where it stopped; delete the
directory to start over. Prints a table and writes JSON to --output.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import data, models, tflite_eval, training  # noqa: E402
from examples.benchmarks import _ptq  # noqa: E402
from examples.benchmarks._results import (  # noqa: E402
    paired_verdict,
    write_json_atomically,
    write_results,
)
from examples.benchmarks._timing import XNNPACK, interleaved_latencies  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("cifar10_path", None, "CIFAR-10 .npz archive; empty: keras.datasets (online).")
flags.DEFINE_string("work_dir", "runs/deployment", "Cache for the models and the stage metrics.")
flags.DEFINE_string(
    "baseline", None, "Trained baseline .keras (default: <work_dir>/baseline.keras)."
)
flags.DEFINE_enum(
    "model", "resnet20", ["resnet20", "mobilenet_v2"], "Architecture (examples/models.py)."
)
flags.DEFINE_integer("baseline_epochs", 15, "Epochs to train the baseline if it is not cached.")
flags.DEFINE_integer("prune_epochs", 40, "Fine-tuning epochs of the pruned model.")
flags.DEFINE_integer("pruning_steps", 3, "Epochs over which the schedule reaches the target.")
flags.DEFINE_float("flops_target", 0.5, "Fraction of FLOPs to remove by pruning.")
flags.DEFINE_bool(
    "prune_first_conv", False, "Prune the stem conv (and the residual group it feeds)."
)
flags.DEFINE_bool(
    "prune_downsample_convs", True, "Prune strided convs (and the residual groups they feed)."
)
flags.DEFINE_list(
    "ignored_scopes",
    ["{re}.*shortcut_conv"],
    "Layers never pruned (NNCF's ignored_scopes). The default keeps the shortcut convs and "
    "with them the residual groups, so only the block-internal channels are pruned.",
)
flags.DEFINE_bool(
    "distill",
    True,
    "Fine-tune (pruning and QAT) with keras.distillation.Distiller, the fp32 baseline as teacher.",
)
flags.DEFINE_float("distillation_temperature", 4.0, "Softmax temperature of the distillation loss.")
flags.DEFINE_float(
    "student_loss_weight", 0.5, "Weight of the label loss; the distillation loss gets the rest."
)
flags.DEFINE_list(
    "variants",
    ["fp32", "pruned", "int8", "pruned_int8", "int8_ptq", "int8_ai_edge"],
    "Rows to measure (fp32 is always added): fp32, pruned, int8, pruned_int8, int8_ptq "
    "(TFLite converter PTQ), int8_ai_edge (AI Edge Quantizer PTQ).",
)
flags.DEFINE_integer(
    "calibration_images",
    512,
    "Training images that calibrate the PTQ files (QAT's range initialisation reads as many).",
)
flags.DEFINE_integer("qat_epochs", 1, "QAT fine-tuning epochs (int8 and pruned + int8).")
flags.DEFINE_float("learning_rate", 0.1, "Baseline SGD learning rate (cosine-decayed).")
flags.DEFINE_float("finetune_learning_rate", 0.01, "Pruning fine-tune SGD learning rate.")
flags.DEFINE_float("qat_learning_rate", 1e-3, "QAT fine-tune SGD learning rate.")
flags.DEFINE_float("weight_decay", 5e-4, "SGD decoupled weight decay.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("train_limit", None, "Use only this many training images (tests).")
flags.DEFINE_integer("test_limit", None, "Use only this many test images (tests).")
flags.DEFINE_integer("latency_rounds", 5, "Interleaved latency rounds.")
flags.DEFINE_integer("latency_runs", 100, "Timed invocations per model and round.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity.")
flags.DEFINE_string(
    "output", "examples/benchmarks/results/deployment.json", "Where to write the JSON results."
)

VARIANTS = ("fp32", "pruned", "int8", "pruned_int8", "int8_ptq", "int8_ai_edge")
PTQ = ("int8_ptq", "int8_ai_edge")
TARGETS = {"speedup": 3.5, "size_reduction": 6.0, "accuracy_drop_points": 1.0}


def multiply_accumulates(model):
    """MACs of one image through the Conv2D, DepthwiseConv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out = layer.output.shape
            total += int(np.prod(out[1:])) * int(np.prod(layer.kernel_size))
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            kernel = layer.kernel.shape
            per_output = int(np.prod(kernel[:-1]))  # the kernel holds in/groups inputs
            total += int(np.prod(out[1:])) * per_output
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.Model):
            total += multiply_accumulates(layer)
    return total


class Stages:
    """Stage metrics persisted in <work_dir>/stages.json, so reruns skip finished work.

    Each stage is recorded with the inputs it was made from (the baseline file,
    the flags that shape it, the stage it builds on); a rerun with other
    inputs redoes that stage and every stage built on it.
    """

    def __init__(self, directory):
        self.path = os.path.join(directory, "stages.json")
        self.data = {}
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.data = json.load(f)

    def done(self, name, inputs, *files):
        entry = self.data.get(name)
        return (
            entry is not None
            and entry.get("inputs") == inputs
            and all(os.path.exists(f) for f in files)
        )

    def record(self, name, inputs, values):
        self.data[name] = {"inputs": inputs, **values}
        write_json_atomically(self.path, self.data)


def _fit(model, train, test, epochs, learning_rate, teacher, callbacks=()):
    """SGD with cosine decay on augmented batches; with --distill, `teacher` teaches."""
    steps = epochs * -(-len(train[0]) // FLAGS.batch_size)
    if FLAGS.distill:
        model = training.distiller(
            teacher, model, FLAGS.distillation_temperature, FLAGS.student_loss_weight
        )
    training.compile_classifier(
        model, learning_rate, "sgd", decay_steps=steps, weight_decay=FLAGS.weight_decay
    )
    model.fit(
        training.train_data(train[0], train[1], FLAGS.batch_size, augment=True, seed=FLAGS.seed),
        epochs=epochs,
        shuffle=False,  # the dataset shuffles itself, every epoch
        validation_data=test,
        callbacks=list(callbacks),
        verbose=FLAGS.verbose,
    )


def prune(baseline, train, test, path):
    """FPGM pruning to the FLOPs target, fine-tuned and stripped; saved to `path`."""
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "ignored_scopes": list(FLAGS.ignored_scopes),
            "pruning_init": min(0.1, FLAGS.flops_target),
            "params": {
                "schedule": "exponential",
                "pruning_flops_target": FLAGS.flops_target,
                "pruning_steps": FLAGS.pruning_steps,
                "prune_first_conv": FLAGS.prune_first_conv,
                "prune_downsample_convs": FLAGS.prune_downsample_convs,
                "weight_importance": "geometric_median",
            },
        }
    }
    ctrl, compressed = tf_aat.create_compressed_model(baseline, config)
    print(f"Pruning to {FLAGS.flops_target:.0%} fewer FLOPs, {FLAGS.prune_epochs} epochs")
    _fit(
        compressed,
        train,
        test,
        FLAGS.prune_epochs,
        FLAGS.finetune_learning_rate,
        teacher=baseline,
        callbacks=[tf_aat.CompressionCallback(ctrl)],
    )
    stats = ctrl.statistics().to_dict()
    stripped = ctrl.strip_model(compressed)
    stripped.save(path)
    return stripped, {"controller_flops_reduction": stats.get("flops_reduction")}


def quantize(model, baseline, train, test, path):
    """A short QAT fine-tune, then an int8 TFLite file at `path` (batch 1)."""
    images = FLAGS.calibration_images
    config = {
        "compression": {
            "algorithm": "quantization",
            "initializer": {"range": {"num_init_samples": images}},
        }
    }
    _, qat = tf_aat.create_compressed_model(model, config, init_data=train[0][:images])
    print(f"QAT fine-tuning {model.name} for {FLAGS.qat_epochs} epoch(s)")
    _fit(qat, train, test, FLAGS.qat_epochs, FLAGS.qat_learning_rate, teacher=baseline)
    keras_accuracy = training.accuracy(qat, test[0], test[1], FLAGS.batch_size)
    export = tf_aat.export_tflite(
        qat, path, batch_size=1, verify_data=test[0][:256], raise_on_mismatch=False
    )
    return {"keras_accuracy": keras_accuracy, "verification": export.verification}


def post_training_quantize(name, baseline, calibration, path, float_accuracy):
    """The float baseline quantized after training (no fine-tune): `int8_ptq` by the
    TFLite converter, `int8_ai_edge` by AI Edge Quantizer; an int8 file at `path`."""
    print(f"Post-training quantization ({name}) on {len(calibration)} calibration images")
    if name == "int8_ptq":
        _ptq.converter_ptq(baseline, calibration, path)
    else:
        _ptq.ai_edge_ptq(baseline, calibration, path)
    # The model before conversion is the float baseline: its Keras accuracy is fp32's.
    return {"keras_accuracy": float_accuracy}


def latencies(paths):
    """Median seconds per batch-1 invocation (one thread), interleaved across the files."""
    files = {name: (path, XNNPACK) for name, path in paths.items()}
    return interleaved_latencies(files, FLAGS.latency_rounds, FLAGS.latency_runs, warmup=20)


def selected_variants():
    """The rows to measure, in VARIANTS's order, fp32 first; names checked here,
    before any training."""
    unknown = [name for name in FLAGS.variants if name not in VARIANTS]
    if unknown:
        raise app.UsageError(
            f"--variants takes names from {', '.join(VARIANTS)}. Received: --variants="
            f"{','.join(FLAGS.variants)} (unknown: {', '.join(unknown)})"
        )
    return [name for name in VARIANTS if name == "fp32" or name in FLAGS.variants]


def main(argv):
    del argv
    variants = selected_variants()
    skipped = {}
    ai_edge_version = _ptq.ai_edge_quantizer_version()
    if "int8_ai_edge" in variants and ai_edge_version is None:
        print(f"Leaving out int8_ai_edge: {_ptq.AI_EDGE_MISSING}")
        skipped["int8_ai_edge"] = _ptq.AI_EDGE_MISSING
        variants.remove("int8_ai_edge")
    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    stages = Stages(FLAGS.work_dir)
    train, test = data.load("cifar10", FLAGS.cifar10_path, FLAGS.train_limit, FLAGS.test_limit)
    file = {name: os.path.join(FLAGS.work_dir, f"{name}.tflite") for name in variants}
    baseline_path = FLAGS.baseline or os.path.join(FLAGS.work_dir, "baseline.keras")
    pruned_path = os.path.join(FLAGS.work_dir, "pruned.keras")

    baseline_trained_here = not os.path.exists(baseline_path)

    def build():
        return models.MODELS[FLAGS.model](input_shape=train[0].shape[1:], classes=10)

    baseline = training.load_or_train(
        baseline_path,
        build,
        train,
        test,
        epochs=FLAGS.baseline_epochs,
        batch_size=FLAGS.batch_size,
        optimizer="sgd",
        learning_rate=FLAGS.learning_rate,
        weight_decay=FLAGS.weight_decay,
        augment=True,
        seed=FLAGS.seed,
        verbose=FLAGS.verbose,
    )
    expected = build().name
    if baseline.name != expected:
        raise app.UsageError(
            f"The cached baseline {baseline_path} is a {baseline.name}, but --model="
            f"{FLAGS.model} builds a {expected}. Received: --model={FLAGS.model}, "
            f"--work_dir={FLAGS.work_dir}. Pass another --work_dir (or --baseline) for this "
            "architecture."
        )
    shared = {"batch_size": FLAGS.batch_size, "seed": FLAGS.seed, "train_images": len(train[0])}
    if FLAGS.distill:
        shared["distillation"] = {
            "temperature": FLAGS.distillation_temperature,
            "student_loss_weight": FLAGS.student_loss_weight,
        }
    inputs = {
        "fp32": {
            "baseline": os.path.abspath(baseline_path),
            "baseline_mtime": os.path.getmtime(baseline_path),
        }
    }
    inputs["pruned"] = {
        "fp32": inputs["fp32"],
        "flops_target": FLAGS.flops_target,
        "prune_epochs": FLAGS.prune_epochs,
        "pruning_steps": FLAGS.pruning_steps,
        "finetune_learning_rate": FLAGS.finetune_learning_rate,
        "weight_decay": FLAGS.weight_decay,
        "prune_first_conv": FLAGS.prune_first_conv,
        "prune_downsample_convs": FLAGS.prune_downsample_convs,
        "ignored_scopes": list(FLAGS.ignored_scopes),
        **shared,
    }
    qat = {
        "qat_epochs": FLAGS.qat_epochs,
        "qat_learning_rate": FLAGS.qat_learning_rate,
        "calibration_images": FLAGS.calibration_images,
        **shared,
    }

    inputs["int8"] = {"fp32": inputs["fp32"], **qat}
    inputs["pruned_int8"] = {"pruned": inputs["pruned"], **qat}
    calibration = train[0][: FLAGS.calibration_images]
    inputs["int8_ptq"] = {
        "fp32": inputs["fp32"],
        "calibration_images": len(calibration),
        "train_images": len(train[0]),  # which images the first ones are
    }
    inputs["int8_ai_edge"] = {**inputs["int8_ptq"], "ai_edge_quantizer": ai_edge_version}

    if not stages.done("fp32", inputs["fp32"], file["fp32"]):
        tf_aat.export_tflite(baseline, file["fp32"], batch_size=1, quantize=False)
        accuracy = training.accuracy(baseline, test[0], test[1], FLAGS.batch_size)
        stages.record("fp32", inputs["fp32"], {"keras_accuracy": accuracy})
    pruned = None
    if "pruned" in variants or "pruned_int8" in variants:
        pruned_file = os.path.join(FLAGS.work_dir, "pruned.tflite")
        if stages.done("pruned", inputs["pruned"], pruned_path, pruned_file):
            pruned = keras.models.load_model(pruned_path)
        else:
            pruned, extra = prune(baseline, train, test, pruned_path)
            tf_aat.export_tflite(pruned, pruned_file, batch_size=1, quantize=False)
            extra["keras_accuracy"] = training.accuracy(pruned, test[0], test[1], FLAGS.batch_size)
            stages.record("pruned", inputs["pruned"], extra)
    for name, model in (("int8", baseline), ("pruned_int8", pruned)):
        if name in variants and not stages.done(name, inputs[name], file[name]):
            stages.record(name, inputs[name], quantize(model, baseline, train, test, file[name]))
    float_accuracy = stages.data["fp32"]["keras_accuracy"]
    for name in PTQ:
        if name in variants and not stages.done(name, inputs[name], file[name]):
            values = post_training_quantize(name, baseline, calibration, file[name], float_accuracy)
            stages.record(name, inputs[name], values)

    macs = {"fp32": multiply_accumulates(baseline)}
    params = {"fp32": baseline.count_params()}
    if pruned is not None:
        macs["pruned"], params["pruned"] = multiply_accumulates(pruned), pruned.count_params()
    for name in variants:
        source = "pruned" if name.startswith("pruned") else "fp32"
        macs[name], params[name] = macs[source], params[source]
    print(f"Evaluating the TFLite files on {len(test[0])} test images")
    latency = latencies(file)
    float_predictions = np.argmax(
        baseline.predict(test[0], batch_size=FLAGS.batch_size, verbose=0), -1
    )
    rows, correct = {}, {}
    for name in variants:
        predictions = np.argmax(tflite_eval.predict(file[name], test[0]), -1)
        correct[name] = predictions == test[1]
        rows[name] = {
            "tflite_accuracy": float(np.mean(predictions == test[1])),
            "keras_accuracy": stages.data[name]["keras_accuracy"],
            "agreement_with_fp32": float(np.mean(predictions == float_predictions)),
            "size_bytes": os.path.getsize(file[name]),
            "latency_ms": 1000 * latency[name],
            "macs": macs[name],
            "params": params[name],
        }
    fp32 = rows["fp32"]
    for name, row in rows.items():
        row["speedup"] = fp32["latency_ms"] / row["latency_ms"]
        row["size_reduction"] = fp32["size_bytes"] / row["size_bytes"]
        row["macs_ratio"] = row["macs"] / fp32["macs"]
        row["accuracy_drop_points"] = 100 * (fp32["tflite_accuracy"] - row["tflite_accuracy"])
        # Pruning's ideal speed-up is the MAC ratio; compare it with what pruning
        # achieved at the same precision (pruned vs fp32, pruned_int8 vs int8).
        if name.startswith("pruned"):
            same_precision = rows.get("int8" if name.endswith("int8") else "fp32")
            if same_precision is not None:
                row["pruning_speedup"] = same_precision["latency_ms"] / row["latency_ms"]
                row["pruning_ideal_speedup"] = same_precision["macs"] / row["macs"]
    results = {
        "model": FLAGS.model,
        "dataset": "cifar10",
        "test_images": len(test[0]),
        "train_images": len(train[0]),
        "flags": {
            key: getattr(FLAGS, key)
            for key in (
                "model",
                "baseline_epochs",
                "prune_epochs",
                "pruning_steps",
                "flops_target",
                "prune_first_conv",
                "prune_downsample_convs",
                "ignored_scopes",
                "distill",
                "distillation_temperature",
                "student_loss_weight",
                "qat_epochs",
                "learning_rate",
                "finetune_learning_rate",
                "qat_learning_rate",
                "weight_decay",
                "batch_size",
                "calibration_images",
                "variants",
                "latency_rounds",
                "latency_runs",
                "seed",
            )
        },
        "baseline": {
            "path": baseline_path,
            "trained_here": baseline_trained_here,
            "recipe": training.baseline_recipe(baseline_path),
        },
        "calibration_images": len(calibration),
        "rows": rows,
        "skipped": skipped,
        # The stages behind the rows (the pruned model is behind pruned_int8 too).
        "stages": {
            name: stages.data[name]
            for name in stages.data
            if name in rows or (name == "pruned" and pruned is not None)
        },
        "ai_edge_quantizer": ai_edge_version,
    }
    if "int8" in rows:
        # QAT against post-training quantization of the same float model, on the same
        # test images: the points of accuracy QAT's file has over each PTQ file's, and
        # the images only one of the two gets right (the paired spread the difference
        # comes from; the verdict is McNemar's test on them).
        results["qat_vs_ptq"] = {
            name: {
                "points": 100 * (rows["int8"]["tflite_accuracy"] - rows[name]["tflite_accuracy"]),
                "qat_only_correct": int(np.sum(correct["int8"] & ~correct[name])),
                "ptq_only_correct": int(np.sum(correct[name] & ~correct["int8"])),
            }
            for name in PTQ
            if name in rows
        }
    if "pruned_int8" in rows:
        best = rows["pruned_int8"]
        results["targets"] = TARGETS
        results["targets_met"] = {
            "speedup": best["speedup"] >= TARGETS["speedup"],
            "size_reduction": best["size_reduction"] >= TARGETS["size_reduction"],
            "accuracy_drop_points": best["accuracy_drop_points"] <= TARGETS["accuracy_drop_points"],
        }
    print(format_table(results))
    write_results(FLAGS.output, results)


def format_table(results):
    lines = [
        f"\n{results['model']} on CIFAR-10: TFLite, batch 1, 1 thread "
        f"({results['test_images']} test images)",
        f"  {'model':<13} {'accuracy':>9} {'agrees':>7} {'size KB':>8} {'latency ms':>11} "
        f"{'MACs':>7} {'speed-up':>9} {'smaller':>8} {'pruning speed-up / ideal':>25}",
    ]
    for name, row in results["rows"].items():
        pruning = (
            f"{row['pruning_speedup']:.2f}x / {row['pruning_ideal_speedup']:.2f}x"
            if "pruning_speedup" in row
            else "-"
        )
        lines.append(
            f"  {name:<13} {100 * row['tflite_accuracy']:>8.2f}% "
            f"{100 * row['agreement_with_fp32']:>6.1f}% {row['size_bytes'] / 1024:>8.1f} "
            f"{row['latency_ms']:>11.3f} {row['macs_ratio']:>6.2f}x {row['speedup']:>8.2f}x "
            f"{row['size_reduction']:>7.2f}x {pruning:>25}"
        )
    lines.append("  (agrees: top-1 agreement with the fp32 Keras model)")
    for name, versus in results.get("qat_vs_ptq", {}).items():
        z, verdict = paired_verdict(versus["qat_only_correct"], versus["ptq_only_correct"])
        lines.append(
            f"  int8 (QAT) vs {name}: {versus['points']:+.2f} accuracy points, QAT {verdict} "
            f"(McNemar z {z:+.2f}; right only with QAT on {versus['qat_only_correct']} images, "
            f"only with {name} on {versus['ptq_only_correct']})"
        )
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"  {name} left out: {reason}")
    if "targets_met" in results:
        best = results["rows"]["pruned_int8"]
        met = results["targets_met"]
        targets = results["targets"]
        lines.append(
            f"  pruned_int8 vs fp32: {best['speedup']:.2f}x faster (target >= "
            f"{targets['speedup']}x: {'met' if met['speedup'] else 'MISSED'}), "
            f"{best['size_reduction']:.2f}x smaller (target >= {targets['size_reduction']}x: "
            f"{'met' if met['size_reduction'] else 'MISSED'}), "
            f"{best['accuracy_drop_points']:+.2f} points (target <= "
            f"{targets['accuracy_drop_points']}: "
            f"{'met' if met['accuracy_drop_points'] else 'MISSED'})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)
