"""Training cost of compression: training-step time with masks, QAT and both.

ResNet-20 by default; `--model=mobilenet_v2` measures the depthwise-heavy
MobileNetV2-style net of examples/models.py against the same targets.

ResNet-20 (32x32x3, batch 128), one compiled training step (`model.train_function`
from `make_train_function()`, fed from a repeating `tf.data` iterator, so every
variant pays the same Python overhead). All variants are built in one process
and timed interleaved step by step: each variant runs one training step in
turn, the order rotating every step, after untimed warm-up steps that include
tracing. The figure per variant is the median of its --rounds x --steps
per-step times; the machine is shared and noisy, so only ratios measured in
the same run are reported.

| variant            | model                                                        |
|--------------------|--------------------------------------------------------------|
| `keras3_float`     | plain Keras 3 ResNet-20                                       |
| `tf_aat_masks`     | tf_aat filter pruning masks (FPGM, rate 0.5, all convs)       |
| `tf_aat_qat`       | tf_aat 8-bit QAT                                              |
| `tf_aat_masks_qat` | both algorithms in one config                                 |
| `tf_aat_sparsity`  | tf_aat magnitude sparsity masks (level --sparsity, all kernels) |
| `tf_keras_float`   | plain `tf_keras` (Keras 2) ResNet-20, same architecture       |
| `tfmot_qat`        | TF-MOT `quantize_model` of the `tf_keras` model               |

Targets (over `keras3_float`): masks <= 1.10x, QAT <= 1.2x, both <= 1.3x,
sparsity masks <= 1.10x; and
our QAT ratio no worse than TF-MOT's ratio over `tf_keras_float`. The last two
variants need the `tfmot` extra (`pip install tensorflow-model-optimization
tf-keras`); without it they are skipped with a note.

    python -m examples.benchmarks.training_cost_benchmark      # ~3 min on 2 cores
    python -m examples.benchmarks.training_cost_benchmark --rounds=9 --steps=10
    python -m examples.benchmarks.training_cost_benchmark --model=mobilenet_v2

Random inputs are enough: step time does not depend on the data. Prints a table
and writes JSON to --output.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import models  # noqa: E402
from examples.benchmarks._results import write_results  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps per variant before timing (tracing).")
flags.DEFINE_integer("rounds", 7, "Timing rounds; --rounds x --steps timed steps per variant.")
flags.DEFINE_integer("steps", 5, "Timed steps per variant per round, interleaved step by step.")
flags.DEFINE_float("rate", 0.5, "Filter pruning rate (pruning_init) of the masked variants.")
flags.DEFINE_float(
    "sparsity", 0.5, "Magnitude sparsity level (sparsity_init) of the sparse variant."
)
flags.DEFINE_bool("tfmot", True, "Include the tf_keras / TF-MOT baseline when installed.")
flags.DEFINE_enum(
    "model",
    "resnet20",
    ["resnet20", "mobilenet_v2"],
    "resnet20, or mobilenet_v2 (the depthwise-heavy MobileNetV2-style net of "
    "examples/models.py; no tf_keras twin, so no TF-MOT rows).",
)
flags.DEFINE_string(
    "output",
    None,
    "Where to write the JSON results (default: examples/benchmarks/results/"
    "training_cost.json, training_cost_mobilenet_v2.json for --model=mobilenet_v2).",
)

CLASSES = 10
INPUT_SHAPE = (32, 32, 3)
TARGETS = {"masks": 1.10, "qat": 1.2, "masks_qat": 1.3, "sparsity": 1.10}
# ratio name -> (variant, its float baseline)
RATIOS = {
    "masks": ("tf_aat_masks", "keras3_float"),
    "qat": ("tf_aat_qat", "keras3_float"),
    "masks_qat": ("tf_aat_masks_qat", "keras3_float"),
    "sparsity": ("tf_aat_sparsity", "keras3_float"),
    "tfmot": ("tfmot_qat", "tf_keras_float"),
}


def pruning_section():
    return {
        "algorithm": "filter_pruning",
        "pruning_init": FLAGS.rate,
        "params": {"prune_first_conv": True, "prune_downsample_convs": True},
    }


def quantization_section():
    return {
        "algorithm": "quantization",
        "initializer": {"range": {"num_init_samples": FLAGS.batch_size}},
    }


def sparsity_section():
    return {"algorithm": "magnitude_sparsity", "sparsity_init": FLAGS.sparsity}


def _compile(model, k):
    model.compile(
        optimizer=k.optimizers.SGD(0.01, momentum=0.9),
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def build_variants(x):
    """name -> compiled model, and a note when the TF-MOT baseline is skipped."""
    keras.utils.set_random_seed(0)
    float_model = models.MODELS[FLAGS.model](INPUT_SHAPE, CLASSES)
    configs = {
        "tf_aat_masks": {"compression": pruning_section()},
        "tf_aat_qat": {"compression": quantization_section()},
        "tf_aat_masks_qat": {"compression": [pruning_section(), quantization_section()]},
        "tf_aat_sparsity": {"compression": sparsity_section()},
    }
    variants = {"keras3_float": _compile(float_model, keras)}
    for name, config in configs.items():
        # The float model is not modified; each variant gets its own copy of its weights.
        _, compressed = tf_aat.create_compressed_model(float_model, config, init_data=x[:128])
        variants[name] = _compile(compressed, keras)
    note = None
    if FLAGS.model != "resnet20":
        note = f"TF-MOT baseline not measured for {FLAGS.model} (no tf_keras twin in examples)"
    elif FLAGS.tfmot:
        try:
            import tensorflow_model_optimization as tfmot
            import tf_keras
        except ImportError as error:
            note = (
                f"TF-MOT baseline skipped ({error}); install it with "
                "`pip install tensorflow-model-optimization tf-keras`"
            )
        else:
            tf_keras.utils.set_random_seed(0)
            tf_keras_model = models.resnet20(INPUT_SHAPE, CLASSES, keras_module=tf_keras)
            variants["tf_keras_float"] = _compile(tf_keras_model, tf_keras)
            variants["tfmot_qat"] = _compile(
                tfmot.quantization.keras.quantize_model(tf_keras_model), tf_keras
            )
    else:
        note = "TF-MOT baseline skipped (--notfmot)"
    return variants, note


def _train_function(model):
    # Keras 3 sets `train_function` without returning it; tf_keras does both.
    model.make_train_function()
    return model.train_function


def time_training(variants, x, y):
    """Seconds of every timed training step of each variant, timed interleaved."""
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    runners = {}
    for name, model in variants.items():
        fn = _train_function(model)
        iterator = iter(data)
        for _ in range(FLAGS.warmup_steps):
            float(fn(iterator)["loss"])
        runners[name] = (fn, iterator)
    names = list(runners)
    times = {name: [] for name in names}
    # Round-robin at step granularity, the order rotating every step: each
    # variant's samples are spread evenly over the run, so load from other
    # processes that comes and goes hits every variant alike.
    for index in range(FLAGS.rounds * FLAGS.steps):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            fn, iterator = runners[name]
            start = time.perf_counter()
            float(fn(iterator)["loss"])  # waits for the step to finish
            times[name].append(time.perf_counter() - start)
    return times


def ratios_of(step_times):
    return {
        ratio: step_times[variant] / step_times[baseline]
        for ratio, (variant, baseline) in RATIOS.items()
        if variant in step_times and baseline in step_times
    }


def table_rows(step_times, ratios, qat_no_worse):
    """(variant, ms/step, ratio vs its float baseline, target, result) for each variant."""
    by_variant = {variant: name for name, (variant, _) in RATIOS.items()}
    rows = []
    for variant, seconds in step_times.items():
        ratio, target, result = "1.000x", "", "baseline"
        name = by_variant.get(variant)
        if name in ratios:
            ratio = f"{ratios[name]:.3f}x vs {RATIOS[name][1]}"
            if name in TARGETS:
                target = f"<= {TARGETS[name]:.2f}x"
                result = "PASS" if ratios[name] <= TARGETS[name] else "MISS"
            else:  # TF-MOT: the reference our QAT ratio must not exceed
                target = "tf_aat qat no worse"
                result = "PASS" if qat_no_worse else "MISS"
        rows.append((variant, f"{1000 * seconds:.1f}", ratio, target, result))
    return rows


def print_table(rows):
    print(
        f"\n{FLAGS.model} training step (32x32, batch {FLAGS.batch_size}, median of "
        f"{FLAGS.rounds} x {FLAGS.steps} interleaved steps after {FLAGS.warmup_steps} warm-up)"
    )
    header = ("variant", "ms/step", "ratio vs float", "target", "result")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if index == 1 else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths))
        ]
        print("  " + "  ".join(cells).rstrip())


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (FLAGS.batch_size, *INPUT_SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, FLAGS.batch_size)
    variants, note = build_variants(x)
    per_step = time_training(variants, x, y)
    step_times = {name: statistics.median(times) for name, times in per_step.items()}
    ratios = ratios_of(step_times)
    qat_no_worse = ratios["qat"] <= ratios["tfmot"] if "tfmot" in ratios else None
    results = {
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "model": FLAGS.model,
        "input_shape": list(INPUT_SHAPE),
        "batch_size": FLAGS.batch_size,
        "warmup_steps": FLAGS.warmup_steps,
        "rounds": FLAGS.rounds,
        "steps": FLAGS.steps,
        "pruning_rate": FLAGS.rate,
        "sparsity_level": FLAGS.sparsity,
        "train_step_seconds": step_times,
        "ratios": ratios,
        "ratio_baselines": {name: list(pair) for name, pair in RATIOS.items() if name in ratios},
        "targets": TARGETS,
        "targets_met": {name: ratios[name] <= target for name, target in TARGETS.items()},
        "qat_no_worse_than_tfmot": qat_no_worse,
        # Every timed step in timing order, to judge the noise behind the medians.
        "per_step_seconds": per_step,
    }
    if note:
        results["note"] = note
    print_table(table_rows(step_times, ratios, qat_no_worse))
    if note:
        print(f"  {note}")
    default = "training_cost" + ("" if FLAGS.model == "resnet20" else f"_{FLAGS.model}")
    write_results(FLAGS.output or f"examples/benchmarks/results/{default}.json", results)


if __name__ == "__main__":
    app.run(main)
