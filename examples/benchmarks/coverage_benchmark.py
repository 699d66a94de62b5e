"""Filter-pruning coverage of the keras.applications zoo: every family pruned and stripped.

For each architecture (random weights, a small input, a logits head:
`classifier_activation=None`), filter pruning with every conv allowed
(`prune_first_conv`, `prune_downsample_convs`) is set to rate 0.4, the model
is stripped, and the stripped model's outputs are compared with the masked
model's on random inputs (weights initialised to a constant, such as
BatchNormalization statistics and ConvNeXt's layer scales, get random values
first, so that agreement is not an accident of the initialisation; the JSON
also records how much pruning itself changed the outputs). Per architecture it records the prunable and blocked
channel groups (with the reasons `statistics()` gives), the parameters before
and after, the strip time and the relative L2 error of the stripped outputs
(target: <= 1e-4, every family pruned, none crashes).

    python -m examples.benchmarks.coverage_benchmark              # ~10 min on 2 cores
    python -m examples.benchmarks.coverage_benchmark --models=MobileNetV3Small,ConvNeXtTiny

Prints a table and writes JSON to --output.
"""

import collections
import os
import re
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples.benchmarks._results import write_results  # noqa: E402
from examples.benchmarks._zoo import FAMILIES, randomize_constants  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(FAMILIES), "keras.applications architectures to run.")
flags.DEFINE_float("rate", 0.4, "Filter pruning rate.")
flags.DEFINE_integer("classes", 10, "Classifier outputs.")
flags.DEFINE_integer("batch", 4, "Random images compared between masked and stripped models.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and inputs.")
flags.DEFINE_string(
    "output", "examples/benchmarks/results/coverage.json", "Where to write the JSON results."
)

ERROR_TARGET = 1e-4


def build(name, size, classes):
    """A keras.applications model with random weights and a logits head."""
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=classes)
    kwargs["classifier_activation"] = None
    if name.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = True
    return getattr(keras.applications, name)(**kwargs)


def _short_reasons(groups):
    """The distinct blocking reasons without layer names, and how many groups each blocks.

    "stem: consumed by ln (LayerNormalization), which ..." becomes
    "consumed by LayerNormalization, which ...".
    """
    counts = collections.Counter()
    for group in groups:
        for reason in dict.fromkeys(r.split(": ", 1)[-1] for r in group["reasons"]):
            match = re.match(r"consumed by \S+ \((.*?)\), (.*)", reason)
            text = f"consumed by {match.group(1)}, {match.group(2)}" if match else reason
            counts[text] += 1
    return [{"reason": reason, "groups": count} for reason, count in counts.most_common()]


def measure(name, size):
    keras.utils.set_random_seed(FLAGS.seed)
    model = build(name, size, FLAGS.classes)
    randomize_constants(model, FLAGS.seed)
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "params": {"prune_first_conv": True, "prune_downsample_convs": True},
        }
    }
    start = time.perf_counter()
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    create_s = time.perf_counter() - start
    ctrl.compression_rate = FLAGS.rate
    stats = ctrl.statistics().to_dict()
    start = time.perf_counter()
    stripped = ctrl.strip_model(compressed)
    strip_s = time.perf_counter() - start
    images = np.random.default_rng(FLAGS.seed).uniform(0, 255, (FLAGS.batch, size, size, 3))
    images = images.astype("float32")
    original = np.asarray(model(images, training=False))
    masked = np.asarray(compressed(images, training=False))
    plain = np.asarray(stripped(images, training=False))
    error = float(np.linalg.norm(plain - masked) / max(np.linalg.norm(masked), 1e-12))
    change = float(np.linalg.norm(masked - original) / max(np.linalg.norm(original), 1e-12))
    blocked = stats["not_prunable_groups"]
    return {
        "model": name,
        "input_size": size,
        "ok": True,
        "prunable_groups": stats["prunable_groups"],
        "blocked_groups": len(blocked),
        "blocked_reasons": _short_reasons(blocked),
        "parameters_before": int(model.count_params()),
        "parameters_after": int(stripped.count_params()),
        "filters_before": stats["full_filters"],
        "filters_after": stats["current_filters"],
        "flops_reduction": stats["flops_reduction"],
        "create_seconds": create_s,
        "strip_seconds": strip_s,
        "relative_error": error,
        "pruning_output_change": change,
        "exact": error <= ERROR_TARGET,
    }


def main(argv):
    del argv
    unknown = [m for m in FLAGS.models if not hasattr(keras.applications, m)]
    if unknown:
        raise app.UsageError(
            f"Expected keras.applications architectures. Received unknown: {unknown}"
        )
    rows = []
    for name in FLAGS.models:
        size = FAMILIES.get(name, 32)
        try:
            row = measure(name, size)
        except Exception as error:  # noqa: BLE001 - a crash is a result of this benchmark
            traceback.print_exc()
            row = {"model": name, "input_size": size, "ok": False, "error": repr(error)[:300]}
        rows.append(row)
        if row["ok"]:
            print(
                f"{name:<18} groups {row['prunable_groups']:>3} prunable / "
                f"{row['blocked_groups']:>3} blocked  params {row['parameters_before']:>10,}"
                f" -> {row['parameters_after']:>10,}  strip {row['strip_seconds']:5.1f} s"
                f"  error {row['relative_error']:.1e}",
                flush=True,
            )
        else:
            print(f"{name:<18} FAILED: {row['error']}", flush=True)
        keras.backend.clear_session()
    passed = [r for r in rows if r["ok"] and r["exact"] and r["prunable_groups"] > 0]
    summary = {
        "rate": FLAGS.rate,
        "error_target": ERROR_TARGET,
        "families": len(rows),
        "pruned_exactly": len(passed),
        "crashed": [r["model"] for r in rows if not r["ok"]],
        "target_met": len(passed) == len(rows),
    }
    print(
        f"\n{summary['pruned_exactly']} of {summary['families']} families pruned exactly "
        f"(relative error <= {ERROR_TARGET:g}); crashed: {summary['crashed'] or 'none'}"
    )
    write_results(FLAGS.output, {"summary": summary, "models": rows})


if __name__ == "__main__":
    app.run(main)
