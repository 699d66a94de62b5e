"""Renders the README's results section from the benchmark JSON files.

Every figure in the section comes from a JSON file under
examples/benchmarks/results/, written by the command printed above its table:

    python -m examples.benchmarks.report            # rewrite README.md's results section
    python -m examples.benchmarks.report --check    # exit 1 if README.md is out of date

The section sits between the `<!-- results:begin -->` and
`<!-- results:end -->` lines of README.md; the tests run `--check`.
"""

import json
import os
import sys

from absl import app, flags

from examples.benchmarks._results import paired_verdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "examples", "benchmarks", "results")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

FLAGS = flags.FLAGS
flags.DEFINE_string("readme", os.path.join(ROOT, "README.md"), "README to update.")
flags.DEFINE_string("results_dir", RESULTS, "Directory of the benchmark JSON files.")
flags.DEFINE_bool("check", False, "Only check that the README is up to date (exit 1 if not).")

CIFAR = "--cifar10_path=../shared/data/cifar10_jpeg.npz"
COMMANDS = {
    "compress_digits": [
        "python -m examples.compress --log_dir=runs/digits",
        "cp runs/digits/metrics.json examples/benchmarks/results/compress_digits.json",
    ],
    "compress_cifar10": [
        f"python -m examples.compress --dataset=cifar10 {CIFAR} --model=resnet20 \\",
        "    --config=examples/configs/cifar10_resnet20_pruning_short.json \\",
        "    --optimizer=sgd --learning_rate=0.1 --finetune_learning_rate=0.002 \\",
        "    --weight_decay=5e-4 --augment --baseline_epochs=15 --log_dir=runs/cifar10_resnet20",
        "cp runs/cifar10_resnet20/metrics.json examples/benchmarks/results/compress_cifar10.json",
    ],
    "deployment": [
        f"python -m examples.benchmarks.deployment_benchmark {CIFAR} \\",
        "    --baseline=runs/cifar10_resnet20/baseline.keras --prune_epochs=40 \\",
        "    --work_dir=runs/deployment",
    ],
    "deployment_ptq": [
        f"python -m examples.benchmarks.deployment_benchmark {CIFAR} \\",
        "    --variants=fp32,int8,int8_ptq,int8_ai_edge --work_dir=runs/deployment_ptq \\",
        "    --output=examples/benchmarks/results/deployment_ptq.json",
    ],
    "deployment_ptq_mobilenet_v2": [
        f"python -m examples.benchmarks.deployment_benchmark {CIFAR} --model=mobilenet_v2 \\",
        "    --variants=fp32,int8,int8_ptq,int8_ai_edge --work_dir=runs/deployment_ptq_mobilenet_v2 \\",
        "    --output=examples/benchmarks/results/deployment_ptq_mobilenet_v2.json",
    ],
    "training_cost": [
        "python -m examples.benchmarks.training_cost_benchmark",
        "python -m examples.benchmarks.training_cost_benchmark --model=mobilenet_v2",
    ],
    "search": [
        "python -m examples.benchmarks.search_benchmark "
        "--output=examples/benchmarks/results/search.json",
    ],
    "scale": ["python -m examples.benchmarks.scale_benchmark"],
    "coverage": ["python -m examples.benchmarks.coverage_benchmark"],
    "zoo_deployment": ["python -m examples.benchmarks.zoo_deployment_benchmark"],
    "sparsity_deployment": ["python -m examples.benchmarks.sparsity_deployment_benchmark"],
    "sparsity_cifar10": [
        f"python -m examples.compress --dataset=cifar10 {CIFAR} --model=resnet20 \\",
        "    --config=examples/configs/cifar10_resnet20_sparsity_int8.json \\",
        "    --optimizer=sgd --learning_rate=0.1 --finetune_learning_rate=0.002 \\",
        "    --weight_decay=5e-4 --augment --baseline_epochs=15 \\",
        "    --log_dir=runs/cifar10_resnet20_sparsity",
        f"python -m examples.benchmarks.sparsity_cifar10_benchmark {CIFAR} \\",
        "    --job_dir=runs/cifar10_resnet20_sparsity",
    ],
}


# Deployment runs with other recipes, shown beside the headline run when present.
DEPLOYMENT_RECIPES = ("deployment_15_epochs", "deployment_nncf_scope", "deployment_every_conv")


# The values runs made before a flag existed have in effect.
_FLAGS_BEFORE_THEY_EXISTED = {
    "prune_first_conv": True,
    "prune_downsample_convs": True,
    "ignored_scopes": [],
    "distill": False,
    "calibration_images": 512,
}
# Flags that pick what a run measures, not how: never a recipe difference.
_NOT_RECIPE = ("variants",)


def _run_flags(run):
    """A deployment run's flags, with those it predates at the values it ran with."""
    older = {k: v for k, v in _FLAGS_BEFORE_THEY_EXISTED.items() if k not in run["flags"]}
    return {**run["flags"], **older}


def _flags_changed(base, flags):
    """The absl flags that turn the run with `base` flags into the one with `flags`."""
    changed = []
    for name in [*base, *(name for name in flags if name not in base)]:
        if name in _NOT_RECIPE:
            continue
        value = flags.get(name)
        if value is None or base.get(name) == value:
            continue
        if isinstance(value, bool):
            changed.append(f"--{'' if value else 'no'}{name}")
        elif isinstance(value, list):
            changed.append(f"--{name}={','.join(value)}")
        else:
            changed.append(
                f"--{name}={value:g}" if isinstance(value, float) else f"--{name}={value}"
            )
    return "`" + " ".join(changed) + "`" if changed else "(the command above)"


def _load(name):
    path = os.path.join(FLAGS.results_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _command(name):
    return "```bash\n" + "\n".join(COMMANDS[name]) + "\n```\n"


def _missing(name):
    return f"Not measured yet: run the command above (it writes `results/{name}.json`).\n"


def _pct(value):
    return f"{100 * value:.2f}%"


def _test_rows(m):
    """The test-set row of a main job that validated on held-out training images."""
    if "test" not in m:
        return []
    t = m["test"]
    deployed = f", {t['tflite_accuracy']:.4f} int8 TFLite" if "tflite_accuracy" in t else ""
    return [
        f"| test accuracy ({m['test_images']:,} images, unseen by the search) | "
        f"{t['baseline_accuracy']:.4f} | {t['compressed_accuracy']:.4f} stripped Keras{deployed} |"
    ]


def compress_section(name, title, note):
    m = _load(name)
    out = [f"### {title}\n", _command(name)]
    if m is None:
        return "\n".join(out + [_missing(name)])
    pruning = m["statistics"].get("filter_pruning", m["statistics"])
    size = (
        f"{m['float_tflite_bytes']:,} B float | {m['tflite_bytes']:,} B int8 "
        f"({m['float_tflite_bytes'] / m['tflite_bytes']:.1f}x smaller)"
        if "tflite_bytes" in m
        else "not exported | "
    )
    deployed = f", {m['tflite_accuracy']:.4f} int8 TFLite" if "tflite_accuracy" in m else ""
    validation = m.get("validation", "test images")
    images = f" ({m.get('validation_images', m.get('test_images')):,} {validation})"
    relative = 100 * (1 - m["accuracy_budget"] / m["baseline_accuracy"])
    wall = m["wall_seconds"]
    wall = f"{wall:.0f} s" if wall < 120 else f"{wall / 60:.0f} min"
    out.append(
        "\n".join(
            [
                "| | baseline | compressed |",
                "|---|---|---|",
                f"| search accuracy{images} | {m['baseline_accuracy']:.4f} | "
                f"{m['masked_accuracy']:.4f} "
                f"searched, {m['compressed_accuracy']:.4f} stripped Keras{deployed} |",
            ]
            + _test_rows(m)
            + [
                f"| accuracy budget ({relative:.2g}% below the baseline) | | "
                f"{m['accuracy_budget']:.4f}, "
                f"met: {'yes' if m['criterion_met'] else 'no'} |",
                f"| filter pruning rate found | | {m['compression_rate']:.3f} |",
                f"| FLOPs (conv + dense) | {pruning['full_flops']:,} | {pruning['current_flops']:,} "
                f"({_pct(pruning['flops_reduction'])} fewer) |",
                f"| parameters | {m['baseline_params']:,} | {m['stripped_params']:,} |",
                f"| TFLite file | {size} |",
                f"| search epochs | | {m['epochs']} |",
            ]
        )
        + "\n"
    )
    baseline = "cached baseline" if m.get("baseline_was_cached") else "baseline training included"
    recipe = m.get("baseline_recipe")
    if m.get("baseline_was_cached") and recipe and "seconds" in recipe:
        baseline += (
            f" (its {recipe['epochs']} epochs took {recipe['seconds'] / 60:.0f} min "
            "when it was trained)"
        )
    note = note.format(flops=_pct(pruning["flops_reduction"]), rate=m["compression_rate"])
    out.append(f"{wall} wall on this 2-core CPU machine, {baseline}. {note}\n")
    return "\n".join(out)


def deployment_section():
    r = _load("deployment")
    out = ["### Deployment: ResNet-20 on CIFAR-10 as TFLite files\n", _command("deployment")]
    if r is None:
        return "\n".join(out + [_missing("deployment")])
    f = _run_flags(r)
    source = r.get("baseline")
    if source and source["trained_here"]:
        baseline = (
            f"One baseline, trained here (SGD, {f['baseline_epochs']} epochs, cosine, "
            "augmentation)."
        )
    elif source:
        baseline = f"One baseline, loaded from `{source['path']}` (`--baseline`)."
    else:
        baseline = "One baseline, loaded with `--baseline` (see the command)."
    key = _scope(f)
    scope = SCOPES[key][1] if key in SCOPES else key
    teacher = (
        " Both fine-tunes are distilled from the fp32 baseline (`keras.distillation.Distiller`, "
        f"temperature {f['distillation_temperature']:g}, label-loss weight "
        f"{f['student_loss_weight']:g})."
        if f["distill"]
        else ""
    )
    out.append(
        f"{baseline} `pruned`: "
        f"FPGM to {f['flops_target']:.0%} fewer FLOPs over {f['pruning_steps']} epochs "
        f"(exponential schedule) on {scope}, {f['prune_epochs']} fine-tuning epochs, "
        f"filters removed. `int8`: {f['qat_epochs']} QAT epoch(s).{teacher} Accuracy of the TFLite file on "
        f"{r['test_images']:,} test images; latency at batch 1 on one thread (LiteRT, XNNPACK), "
        f"median of {f['latency_rounds']} interleaved rounds of {f['latency_runs']} runs.\n"
    )
    lines = [
        "| model | TFLite accuracy | Keras accuracy | size | latency | MACs | speed-up | smaller "
        "| pruning: speed-up / MAC ideal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        pruning = (
            f"{row['pruning_speedup']:.2f}x / {row['pruning_ideal_speedup']:.2f}x"
            if name.startswith("pruned")
            else ""
        )
        lines.append(
            f"| {name} | {_pct(row['tflite_accuracy'])} | {_pct(row['keras_accuracy'])} | "
            f"{row['size_bytes'] / 1024:.0f} KB | "
            f"{row['latency_ms']:.3f} ms | {row['macs'] / 1e6:.1f} M ({row['macs_ratio']:.2f}x) | "
            f"{row['speedup']:.2f}x | {row['size_reduction']:.2f}x | {pruning} |"
        )
    out.append("\n".join(lines) + "\n")
    agreement = [
        f"{name} {100 * r['stages'][name]['verification']['argmax_agreement']:.1f}%"
        for name in ("int8", "pruned_int8")
        if "verification" in r["stages"].get(name, {})
    ]
    ptq = (
        ", the float baseline for the post-training rows"
        if any(name in r["rows"] for name in ("int8_ptq", "int8_ai_edge"))
        else ""
    )
    if agreement:
        out.append(
            "Keras accuracy is the model before conversion (the QAT model for the int8 and "
            f"pruned_int8 rows{ptq}). "
            "Top-1 agreement of the int8 file with its QAT Keras model on the first 256 test "
            f"images: {', '.join(agreement)}.\n"
        )
    best, targets, met = r["rows"]["pruned_int8"], r["targets"], r["targets_met"]
    out.append(
        f"pruned + int8 against fp32: {best['speedup']:.2f}x faster (target >= "
        f"{targets['speedup']}x, {'met' if met['speedup'] else 'missed'}), "
        f"{best['size_reduction']:.2f}x smaller (target >= {targets['size_reduction']}x, "
        f"{'met' if met['size_reduction'] else 'missed'}), "
        f"{best['accuracy_drop_points']:+.2f} accuracy points lost (target <= "
        f"{targets['accuracy_drop_points']}, {'met' if met['accuracy_drop_points'] else 'missed'}).\n"
    )
    others = [(name, _load(name)) for name in DEPLOYMENT_RECIPES]
    others = [(name, other) for name, other in others if other is not None]
    if others:
        out.append(
            "Other recipes, same script and baseline (the command above with the flags below, "
            "`--work_dir=runs/<name>` and `--output=examples/benchmarks/results/<name>.json`):\n"
        )
        lines = [
            "| recipe | flags | fine-tuning epochs | pruned + int8: accuracy lost | speed-up "
            "| smaller | targets met |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, other in [("deployment", r), *others]:
            row = other["rows"]["pruned_int8"]
            flags = _run_flags(other)
            lines.append(
                f"| {_recipe(flags)} | {_flags_changed(f, flags)} | {flags['prune_epochs']} | "
                f"{row['accuracy_drop_points']:+.2f} points | {row['speedup']:.2f}x | "
                f"{row['size_reduction']:.2f}x | "
                f"{sum(other['targets_met'].values())} of {len(other['targets_met'])} |"
            )
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# How each row of the QAT-against-PTQ table was quantized, and what training it took.
PTQ_ROWS = {
    "fp32": ("- (float)", "the baseline"),
    "int8": ("tf_aat QAT, `export_tflite`", "{qat_epochs} QAT epoch(s)"),
    "int8_ptq": ("TFLite converter PTQ (`export_tflite(..., representative_data=)`)", "none"),
    "int8_ai_edge": ("AI Edge Quantizer {version}, `static_wi8_ai8`", "none"),
}


# The QAT-against-PTQ runs: results name, architecture as the heading says it.
PTQ_RUNS = {
    "deployment_ptq": "ResNet-20",
    "deployment_ptq_mobilenet_v2": "the MobileNetV2-style net (depthwise separable)",
}


def deployment_ptq_section(name):
    r = _load(name)
    out = [
        f"### QAT against post-training quantization: {PTQ_RUNS[name]} on CIFAR-10\n",
        _command(name),
    ]
    if r is None:
        return "\n".join(out + [_missing(name)])
    f = r["flags"]
    images = r["calibration_images"]
    recipe = r["baseline"].get("recipe") or {}
    trained = (
        f"trained by the command when it is not cached (SGD, {recipe['epochs']} epochs, cosine "
        f"decay, augmentation, {recipe['train_images']:,} images)"
        if recipe
        else "loaded with `--baseline`"
    )
    teacher = (
        f", distilled from the fp32 baseline (temperature {f['distillation_temperature']:g})"
        if f["distill"]
        else ""
    )
    rows = r["rows"]
    ptq = [name for name in rows if name in ("int8_ptq", "int8_ai_edge")]
    described = [f"One float baseline, `{r['baseline']['path']}`, {trained}."]
    if "int8" in rows:
        described.append(
            f"`int8`: {f['qat_epochs']} QAT epoch(s){teacher}, ranges initialised on "
            f"{images} training images."
        )
    if ptq:
        described.append(
            f"{' and '.join(f'`{name}`' for name in ptq)}: no training, calibrated on "
            f"{'the same ' if 'int8' in rows else ''}{images} training images."
        )
    if "int8_ai_edge" in rows:
        described.append("AI Edge Quantizer's file takes and gives int8; the others float.")
    described.append(
        f"Accuracy of each TFLite file on {r['test_images']:,} test images, and its top-1 "
        "agreement with the float Keras model there; latency at batch 1 on one thread "
        f"(LiteRT, XNNPACK), median of {f['latency_rounds']} interleaved rounds of "
        f"{f['latency_runs']} runs.\n"
    )
    out.append(" ".join(described))
    lines = [
        "| model | quantized by | training | TFLite accuracy | agreement with fp32 Keras "
        "| size | latency | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        how, training = PTQ_ROWS.get(name, ("tf_aat", "see the deployment table"))
        lines.append(
            f"| {name} | {how.format(version=r.get('ai_edge_quantizer'))} | "
            f"{training.format(qat_epochs=f['qat_epochs'])} | {_pct(row['tflite_accuracy'])} | "
            f"{_pct(row['agreement_with_fp32'])} | {row['size_bytes'] / 1024:.0f} KB | "
            f"{row['latency_ms']:.3f} ms | {row['speedup']:.2f}x |"
        )
    out.append("\n".join(lines) + "\n")
    words = {
        "better": "better than",
        "tied": "tied with (no significant difference)",
        "worse": "worse than",
    }
    versus = []
    for name, v in r.get("qat_vs_ptq", {}).items():
        z, verdict = paired_verdict(v["qat_only_correct"], v["ptq_only_correct"])
        versus.append(
            f"against `{name}`, {v['points']:+.2f} points: right only with QAT on "
            f"{v['qat_only_correct']} test images, only with `{name}` on {v['ptq_only_correct']} "
            f"(McNemar z = {z:+.2f}), so QAT is {words[verdict]} `{name}`"
        )
    if versus:
        out.append(
            f"QAT's int8 file {'; '.join(versus)}. Significance: two-sided 5% (|z| >= 1.96) on "
            "the images only one of the two files gets right, the spread of a paired "
            "comparison on one test set.\n"
        )
    for name, reason in r.get("skipped", {}).items():
        out.append(f"`{name}` was left out: {reason}.\n")
    return "\n".join(out)


# Pruning scopes of the deployment runs: (short name, description).
SCOPES = {
    "every": ("every conv", "every conv (residual groups included)"),
    "internal": (
        "block-internal channels",
        "the channels inside the residual blocks (the first conv of each block; the shortcut "
        "convs are in `ignored_scopes`, so the stem, the shortcuts and the residual widths "
        "are kept)",
    ),
    "nncf": (
        "NNCF's default scope",
        "the first conv of each residual block, strided ones excepted (NNCF's defaults: the "
        "stem, the downsample convs and the residual widths are kept)",
    ),
}


def _scope(f):
    """The SCOPES key of a deployment run's flags (`_run_flags`), or a literal description."""
    first, down, ignored = f["prune_first_conv"], f["prune_downsample_convs"], f["ignored_scopes"]
    if first and down and not ignored:
        return "every"
    if down and not first and ignored == ["{re}.*shortcut_conv"]:
        return "internal"
    if not first and not down and not ignored:
        return "nncf"
    return f"prune_first_conv={first}, prune_downsample_convs={down}, ignored_scopes={ignored}"


def _recipe(f):
    """A short name for the pruning scope and the teacher of a deployment run (`_run_flags`)."""
    scope = SCOPES.get(_scope(f), ("custom scope",))[0]
    return scope + (", distilled" if f["distill"] else ", labels only")


def _training_cost_table(r):
    times, ratios, targets = r["train_step_seconds"], r["ratios"], r["targets"]
    rows = [
        ("plain Keras 3", "keras3_float", None, None),
        ("pruning masks", "tf_aat_masks", "masks", "keras3_float"),
        ("QAT", "tf_aat_qat", "qat", "keras3_float"),
        ("masks + QAT", "tf_aat_masks_qat", "masks_qat", "keras3_float"),
        ("magnitude sparsity masks", "tf_aat_sparsity", "sparsity", "keras3_float"),
        ("plain `tf_keras`", "tf_keras_float", None, None),
        ("TF-MOT QAT", "tfmot_qat", "tfmot", "tf_keras_float"),
    ]
    lines = ["| variant | ms/step | ratio | target |", "|---|---|---|---|"]
    for label, key, ratio, base in rows:
        if key not in times:
            continue
        target = f"<= {targets[ratio]}x" if ratio in targets else ""
        if ratio in targets:
            target += " (met)" if ratios[ratio] <= targets[ratio] else " (MISSED)"
        if ratio == "tfmot":
            target = "ours (QAT row) no worse"
        shown = f"{ratios[ratio]:.3f}x of {base}" if ratio else ""
        lines.append(f"| {label} | {1000 * times[key]:.1f} | {shown} | {target} |")
    return "\n".join(lines) + "\n"


def training_cost_section():
    r = _load("training_cost")
    out = ["### Training cost: training-step time\n", _command("training_cost")]
    if r is None:
        return "\n".join(out + [_missing("training_cost")])
    out.append(
        f"ResNet-20, batch {r['batch_size']}, 32x32x3, median per-step time after warm-up, "
        "all variants interleaved in one process.\n"
    )
    out.append(_training_cost_table(r))
    if r.get("qat_no_worse_than_tfmot") is None:
        out.append(r.get("note", "TF-MOT was not measured in this run.") + "\n")
    else:
        out.append(
            "Our QAT ratio is "
            + ("no worse than" if r["qat_no_worse_than_tfmot"] else "WORSE than")
            + " TF-MOT's in the same run.\n"
        )
    m = _load("training_cost_mobilenet_v2")
    if m is None:
        out.append(
            "MobileNetV2-style net: not measured yet (the second command writes "
            "`results/training_cost_mobilenet_v2.json`).\n"
        )
    else:
        out.append(
            "The depthwise-heavy MobileNetV2-style net of `examples/models.py` (inverted "
            f"residual blocks, ReLU6), batch {m['batch_size']}, 32x32x3, same targets:\n"
        )
        out.append(_training_cost_table(m))
    return "\n".join(out)


def search_section():
    r = _load("search")
    out = ["### Search efficiency against an oracle sweep\n", _command("search")]
    if r is None:
        return "\n".join(out + [_missing("search")])
    p = r["accuracy_aware_params"]
    out.append(
        f"{r['dataset']}, {r['model']}, {p['maximal_relative_accuracy_degradation']}% relative "
        f"budget (baseline {r['baseline_accuracy']:.4f}, budget {r['accuracy_budget']:.4f}), "
        f"initial phase {p['initial_training_phase_epochs']} epochs, patience "
        f"{p['patience_epochs']}; the oracle fine-tunes every rate of a {r['grid_step']} grid for "
        f"the same {p['patience_epochs']} epochs from the same initial-phase checkpoint. "
        f"{r['noise_note']}\n"
    )
    labels = {
        "search": "adaptive search (reference rules)",
        "search_advance_on_pass": "adaptive search, `advance_on_pass`",
        "oracle": "oracle sweep",
    }
    lines = [
        "| method | epochs | rate found | accuracy | rate found - oracle's best (grid steps) |",
        "|---|---|---|---|---|",
    ]
    for key in ("search", "search_advance_on_pass", "oracle"):
        if key not in r["methods"]:
            continue
        m = r["methods"][key]
        # distance_steps is the oracle's rate minus the method's.
        distance = f"{-m['distance_steps']:+.0f}" if "distance_steps" in m else ""
        lines.append(
            f"| {labels[key]} | {m['epochs']} | {m['final_rate']:.3f} | "
            f"{m['final_accuracy']:.4f} | {distance} |"
        )
    out.append("\n".join(lines) + "\n")
    out.append(
        "Target: within one grid step of the oracle's best passing rate, in fewer epochs than "
        "the sweep. A search can pass a rate the oracle misses (a positive difference): it "
        "reaches each rate after fine-tuning at the rates below it, while the oracle starts "
        "every rate from the initial-phase checkpoint.\n"
    )
    return "\n".join(out)


def scale_section():
    r = _load("scale")
    out = ["### Scale: FPGM scoring, mask updates and strip\n", _command("scale")]
    if r is None:
        return "\n".join(out + [_missing("scale")])
    lines = [
        "| FPGM scoring, one 3x3x512 layer | fastest of repeats | one BLAS thread |",
        "|---|---|---|",
    ]
    for row in r["fpgm_scaling"]:
        lines.append(
            f"| {row['filters']} filters | {1000 * row['seconds']:.1f} ms | "
            + (
                f"{1000 * row['single_thread_seconds']:.1f} ms |"
                if row.get("single_thread_seconds") is not None
                else "n/a (needs threadpoolctl) |"
            )
        )
    out.append("\n".join(lines) + "\n")
    n = r["resnet50"]
    out.append(
        "\n".join(
            [
                f"| ResNet50 ({n['input_size']}x{n['input_size']}), every conv prunable | seconds "
                "| target |",
                "|---|---|---|",
                f"| `create_compressed_model` | {n['create_compressed_model_s']:.2f} | |",
                f"| recompute all masks (FPGM scores + assignment) | "
                f"{n['recompute_all_masks_s']:.2f} | < {n['recompute_target_s']:g} |",
                f"| `strip_model` (rate {n['final_rate']}: {n['params_full']:,} -> "
                f"{n['params_stripped']:,} parameters) | {n['strip_s']:.2f} | "
                f"< {n['strip_target_s']:g} |",
            ]
        )
        + "\n"
    )
    out.append(
        "Scoring grows with filters squared times their size (pairwise distances); with both "
        "BLAS threads on a loaded machine a call can stall on a busy core, hence the "
        "one-thread column.\n"
    )
    return "\n".join(out)


def coverage_section():
    r = _load("coverage")
    out = ["### Coverage: filter pruning on the keras.applications zoo\n", _command("coverage")]
    if r is None:
        return "\n".join(out + [_missing("coverage")])
    summary = r["summary"]
    out.append(
        f"Random weights, logits heads, every conv allowed, rate {summary['rate']}; weights "
        "initialised to a constant (BatchNormalization statistics, biases, layer scales) are "
        "randomized first so that agreement is no accident. Error: relative L2 distance of the "
        "stripped model's outputs from the masked model's (target <= "
        f"{summary['error_target']:g}); change: how far pruning moved the outputs.\n"
    )
    lines = [
        "| architecture | input | groups pruned / blocked | parameters | strip | error | change "
        "| what blocks the rest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["models"]:
        if not row["ok"]:
            lines.append(
                f"| {row['model']} | {row['input_size']} | crashed: {row['error'][:80]} | | | | | |"
            )
            continue
        reasons = "; ".join(
            f"{item['reason']} ({item['groups']})" for item in row["blocked_reasons"][:2]
        )
        lines.append(
            f"| {row['model']} | {row['input_size']} | {row['prunable_groups']} / "
            f"{row['blocked_groups']} | {row['parameters_before'] / 1e6:.2f} M -> "
            f"{row['parameters_after'] / 1e6:.2f} M | {row['strip_seconds']:.1f} s | "
            f"{row['relative_error']:.0e} | {row['pruning_output_change']:.2f} | {reasons} |"
        )
    out.append("\n".join(lines) + "\n")
    out.append(
        f"{summary['pruned_exactly']} of {summary['families']} families pruned and stripped "
        f"exactly; crashed: {', '.join(summary['crashed']) or 'none'}. Two architectures a "
        "test also runs: MobileNetV3Small and ConvNeXtTiny "
        "(`tests/benchmarks/coverage_benchmark_test.py`).\n"
    )
    return "\n".join(out)


def zoo_deployment_section():
    r = _load("zoo_deployment")
    out = [
        "### Deployment of the keras.applications zoo (default softmax heads)\n",
        _command("zoo_deployment"),
    ]
    if r is None:
        return "\n".join(out + [_missing("zoo_deployment")])
    summary = r["summary"]
    out.append(
        f"Random weights (constants randomized), default heads, filter pruning {summary['rate']} "
        "(every conv allowed) + int8 QAT calibrated on 32 images passed through the family's "
        "`preprocess_input`, stripped, exported; 16 other images compared. Strip: relative L2 "
        "error of the stripped QAT model against the searched one (target <= "
        f"{summary['strip_target']:g}); TFLite: relative L2 error of the file's outputs against "
        f"the stripped Keras model (target <= {summary['tflite_target']:.0%}).\n"
    )
    lines = [
        "| architecture | strip error | TFLite error | top-1 agreement | mean top probability "
        "| float heavy ops | size | deployed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["models"]:
        if not row["ok"]:
            lines.append(f"| {row['model']} | refused: {row['error'][:100]} | | | | | | no |")
            continue
        lines.append(
            f"| {row['model']} | {row['strip_error']:.0e} | {row['tflite_error']:.2%} | "
            f"{row['top1_agreement']:.0%} | {row['output_max_probability']:.2f} | "
            f"{', '.join(row['float_heavy_ops']) or 'none'} | "
            f"{row['size_bytes'] / 1e6:.2f} MB | {'yes' if row['deployed'] else 'no'} |"
        )
    out.append("\n".join(lines) + "\n")
    floors = [row for row in r["models"] if row["ok"] and "runtimes_error" in row]
    if floors:
        out.append(
            "The floor on these random-weight nets: the same file on TFLite's builtin kernels "
            "against Keras, and against LiteRT's default XNNPACK kernels (two int8 runtimes of "
            "one file, whose requantizations round a value near a boundary differently): "
            + "; ".join(
                f"{row['model']} {row['tflite_builtin_error']:.2%}, "
                f"{row['runtimes_error']:.2%} apart"
                for row in floors
            )
            + ".\n"
        )
    missed = summary["deployed"] < summary["families"]
    out.append(
        f"{summary['deployed']} of {summary['families']} families meet all three targets; "
        "refused: "
        + (", ".join(summary["refused"]) or "none")
        + (". What the others miss is under Limitations" if missed else "")
        + ". With random weights most softmax outputs are nearly flat (mean top "
        "probability near 1/10), so small TFLite errors there say less than on a trained "
        "model.\n"
    )
    for name, when in summary.get("rows_rerun", {}).items():
        out.append(f"The {name} row was re-run {when}.\n")
    return "\n".join(out)


def sparsity_deployment_section():
    r = _load("sparsity_deployment")
    out = [
        "### Sparsity in an int8 TFLite file: size and LiteRT latency\n",
        _command("sparsity_deployment"),
    ]
    if r is None:
        return "\n".join(out + [_missing("sparsity_deployment")])
    out.append(
        f"ResNet-20 ({r['weights']} weights), magnitude sparsity ({r['mode']} mode: every "
        "kernel at the level) + int8 QAT, stripped, exported with dense weights and with "
        "`export_tflite(..., sparse_weights=True)`; batch 1, one thread, median of "
        f"{r['rounds']} x {r['runs']} invocations per file, all files interleaved. Every file "
        "agreed with its Keras model on all verification samples' top-1.\n"
        if all(row["verification"]["argmax_agreement"] == 1.0 for row in r["rows"])
        else "Not every file agreed with its Keras model: see the JSON.\n"
    )
    lines = [
        "| zeros | weights stored | size | vs dense, no zeros | XNNPACK (default) | "
        "builtin kernels | speed-up of the default path |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        xnnpack = row["latency_ms_xnnpack"]
        lines.append(
            f"| {row['zero_fraction']:.0%} | {row['encoding']} | {row['size_bytes'] / 1e3:.0f} kB "
            f"| {row['size_vs_first_dense']:.2f}x | "
            + (f"{xnnpack:.3f} ms" if xnnpack is not None else "cannot prepare the file")
            + f" | {row['latency_ms_builtin']:.3f} ms | {row['speedup_vs_first_dense']:.2f}x |"
        )
    out.append("\n".join(lines) + "\n")
    out.append(
        "Zeros alone change neither size nor speed: a dense int8 file stores every weight. The "
        "sparse encoding shrinks the file once most weights are zero; a DENSIFY op expands them "
        "when the interpreter prepares the model, so inference runs dense kernels and is no "
        "faster. Where XNNPACK cannot prepare a sparse-encoded file (a FULLY_CONNECTED whose "
        "weights come from DENSIFY), `export_tflite` warns and records it in "
        "`TFLiteExport.delegate_error`, and such a file runs on TFLite's builtin kernels only, "
        "several times slower. XNNPACK's own sparse inference (float models, CHW layout) is not "
        "reachable from LiteRT's Python API.\n"
    )
    return "\n".join(out)


def sparsity_cifar10_section():
    r = _load("sparsity_cifar10")
    out = [
        "### Sparse + int8 on CIFAR-10: the level the search found within 1%\n",
        _command("sparsity_cifar10"),
    ]
    if r is None:
        return "\n".join(out + [_missing("sparsity_cifar10")])
    job = r["job"]
    minutes = (job.get("wall_seconds") or 0) / 60
    out.append(
        "The main job with `cifar10_resnet20_sparsity_int8.json` (NNCF's magnitude sparsity + "
        "int8 sample layout, global mode) searched the sparsity level with a 1% budget: "
        f"baseline {job['baseline_accuracy']:.2%}, budget {job['accuracy_budget']:.2%}, level "
        f"found {job['compression_rate']:.3f} in {job['epochs']} epochs "
        f"({minutes:.0f} min on this 2-core CPU, baseline training included), "
        f"{job['compressed_accuracy']:.2%} stripped Keras (criterion met: "
        f"{'yes' if job['criterion_met'] else 'no'}; on the {job['validation']}, as NNCF's "
        "examples validate). The benchmark then exports three int8 files and scores each on "
        f"the {r['test_images']:,} test images with LiteRT. `dense int8` is the baseline "
        f"quantized without sparsity (ranges from {r['calibration_images']} training images, "
        "no fine-tuning). Latency at batch 1 on one thread, median of "
        f"{r['rounds']} x {r['runs']} invocations per file, all files interleaved.\n"
    )
    lines = [
        "| file | zeros | size | vs dense int8 | TFLite accuracy | XNNPACK (default) | "
        "builtin kernels | speed-up of the default path |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        xnnpack = row["latency_ms_xnnpack"]
        lines.append(
            f"| {row['name']} | {row['zero_fraction']:.1%} | {row['size_bytes'] / 1e3:.0f} kB "
            f"| {row['size_vs_dense_int8']:.2f}x | {row['tflite_accuracy']:.2%} | "
            + (f"{xnnpack:.3f} ms" if xnnpack is not None else "cannot prepare the file")
            + f" | {row['latency_ms_builtin']:.3f} ms | {row['speedup_vs_dense_int8']:.2f}x |"
        )
    out.append("\n".join(lines) + "\n")
    rows = {row["name"]: row for row in r["rows"]}
    dense, sparse = rows["sparse, dense storage"], rows["sparse, sparse storage"]
    out.append(
        f"At the level found, the sparse encoding makes the file "
        f"{sparse['size_vs_dense_int8']:.2f}x the dense int8 one and the default path runs it "
        f"at {sparse['speedup_vs_dense_int8']:.2f}x its speed; dense storage of the same zeros "
        f"is {dense['size_vs_dense_int8']:.2f}x and {dense['speedup_vs_dense_int8']:.2f}x. "
        "Zeros pay in size only at high levels (the table above), and in "
        "speed not at all on LiteRT's CPU kernels.\n"
    )
    return "\n".join(out)


def render():
    parts = [
        "All figures below are rendered by `python -m examples.benchmarks.report` from the JSON "
        "files in `examples/benchmarks/results/`, written by the command above each table on "
        "this 2-core CPU machine (shared and noisy: timings are ratios measured side by side "
        "in one run).\n",
        compress_section(
            "compress_digits",
            "The main job on digits (pruning + int8 QAT, 1% budget)",
            "`runs/digits/summary.md` has the search table.",
        ),
        compress_section(
            "compress_cifar10",
            "The main job on CIFAR-10: ResNet-20, the reference config's search rules, 1% budget",
            "The search validates on the 10,000 test images, as NNCF's examples do, so these "
            "are validation accuracies, not unseen-test ones (`--validation_images=5000` holds "
            "out training images for the search instead and scores the test images once, at "
            "the end; the baseline then trains on 45,000 images). Only the convolutions NNCF's defaults allow "
            "are pruned (the first conv of each block, the two strided ones excepted; residual "
            "groups hold the stem or a strided shortcut), hence {flops} fewer FLOPs at rate {rate:.3f}. "
            "`cifar10_resnet20_pruning_short.json` keeps the reference config but scales its "
            "epoch counts to a CPU (see Limitations).",
        ),
        deployment_section(),
        *(deployment_ptq_section(name) for name in PTQ_RUNS),
        training_cost_section(),
        search_section(),
        scale_section(),
        coverage_section(),
        zoo_deployment_section(),
        sparsity_deployment_section(),
        sparsity_cifar10_section(),
    ]
    return "\n".join(parts)


def main(argv):
    del argv
    with open(FLAGS.readme, encoding="utf-8") as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        sys.exit(f"{FLAGS.readme} has no {BEGIN} ... {END} block to fill.")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{render()}\n{END}{tail}"
    if FLAGS.check:
        if updated != readme:
            sys.exit(
                "README.md's results section is out of date with examples/benchmarks/results/: "
                "run `python -m examples.benchmarks.report`."
            )
        print("README.md results are up to date.")
        return
    with open(FLAGS.readme, "w", encoding="utf-8") as f:
        f.write(updated)
    print(f"Updated {FLAGS.readme}")


if __name__ == "__main__":
    app.run(main)
