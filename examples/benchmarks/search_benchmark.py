"""Search efficiency: the adaptive rate search against an exhaustive oracle sweep.

One trained baseline, one filter-pruning config, three ways to find the
highest pruning rate whose validation accuracy stays within the budget
(`maximal_accuracy_degradation`, percent of the baseline's accuracy):

1. `search`: `tf_aat.AccuracyAwareCallback` in `model.fit`, mode
   `adaptive_compression_level` (initial phase with the config's schedule,
   then +/- step, step halved on every change of direction).
2. `search_advance_on_pass`: the same with `"advance_on_pass": true` (a rate
   is left at its first passing epoch).
3. `oracle`: the initial phase once (checkpoint = the one the search would
   start from), then for every rate of a 0.025 grid up to the controller's
   maximal rate: reload that checkpoint (weights, masks, controller and
   optimizer state), set the rate, fine-tune `patience_epochs` epochs and
   keep the best validation accuracy. Its answer is the highest grid rate
   that meets the same criterion.

For each: epochs spent (initial phase included, the shared baseline
training not), final rate, final accuracy, whether the criterion is met, and
the distance from the oracle's best passing rate. The target: a search lands
within one grid step of the oracle with fewer epochs than the sweep.

    python -m examples.benchmarks.search_benchmark                # digits, small CNN, ~2 min on 2 cores
    python -m examples.benchmarks.search_benchmark --dataset=cifar10 --model=resnet20 \
        --cifar10_path=../shared/data/cifar10_jpeg.npz --train_limit=5000 --test_limit=1000

The baseline is cached in --output_dir (reruns skip its training).
"""

import copy
import dataclasses
import json
import logging
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import data, models, training  # noqa: E402

GRID_STEP = 0.025
_EPS = 1e-9

METHODS = ("search", "search_advance_on_pass", "oracle")


def default_config():
    """The benchmark's config: filter pruning (FPGM) + the seed's adaptive search."""
    return {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.1,
                "params": {
                    "schedule": "exponential",
                    "pruning_target": 0.4,
                    "pruning_steps": 4,
                    "filter_importance": "geometric_median",
                    "prune_first_conv": True,
                },
                "accuracy_aware_training": {
                    "mode": "adaptive_compression_level",
                    "maximal_accuracy_degradation": 1.0,
                    "initial_training_phase_epochs": 5,
                    "patience_epochs": 2,
                    "maximal_total_epochs": 60,
                },
            }
        ]
    }


@dataclasses.dataclass
class Options:
    """Everything the benchmark reads (built from the flags by `main`)."""

    output_dir: str = "runs/search_benchmark"
    output: str | None = None
    config: str | None = None
    dataset: str = "digits"
    model: str = "small_cnn"
    cifar10_path: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    baseline_epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    initial_epochs: int | None = None
    patience_epochs: int | None = None
    maximal_total_epochs: int | None = None
    sweep_max: float | None = None
    methods: tuple = METHODS
    seed: int = 0
    verbose: int = 0


FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", Options.output_dir, "Cache (baseline) and logs directory.")
flags.DEFINE_string("output", None, "JSON results (default: <output_dir>/search_benchmark.json).")
flags.DEFINE_string("config", None, "JSON config; default: the config built in this script.")
flags.DEFINE_enum("dataset", Options.dataset, list(data.DATASETS), "Dataset.")
flags.DEFINE_enum("model", Options.model, list(models.MODELS), "Model.")
flags.DEFINE_string("cifar10_path", None, "CIFAR-10 .npz archive; empty: keras.datasets (online).")
flags.DEFINE_integer("train_limit", None, "Use only this many training images.")
flags.DEFINE_integer("test_limit", None, "Use only this many validation images.")
flags.DEFINE_integer("baseline_epochs", Options.baseline_epochs, "Baseline training epochs.")
flags.DEFINE_integer("batch_size", Options.batch_size, "Batch size.")
flags.DEFINE_float("learning_rate", Options.learning_rate, "Adam learning rate.")
flags.DEFINE_integer("initial_epochs", None, "Override initial_training_phase_epochs.")
flags.DEFINE_integer("patience_epochs", None, "Override patience_epochs.")
flags.DEFINE_integer("maximal_total_epochs", None, "Override maximal_total_epochs.")
flags.DEFINE_float("sweep_max", None, "Highest oracle rate (default: the controller's maximum).")
flags.DEFINE_list("methods", list(METHODS), f"Which of {list(METHODS)} to run.")
flags.DEFINE_integer("seed", Options.seed, "Random seed (set before each method).")
flags.DEFINE_integer("verbose", Options.verbose, "0: table only; 1: search log lines too.")


# ----------------------------------------------------------------- config


def _search_section(config):
    """The dict holding the search parameters (seed or NNCF layout)."""
    if "accuracy_aware_training" in config:
        section = config["accuracy_aware_training"]
        if "params" in section or set(section) == {"mode"}:
            return section.setdefault("params", {})  # NNCF's layout
        return section
    algorithms = config["compression"]
    for algorithm in algorithms if isinstance(algorithms, list) else [algorithms]:
        if "accuracy_aware_training" in algorithm:
            return algorithm["accuracy_aware_training"]
    raise ValueError("The config has no accuracy_aware_training section; nothing to benchmark.")


def build_config(options, advance_on_pass=False, maximal_total_epochs=None):
    """The config dict for one method, with the option overrides applied."""
    if options.config:
        with open(options.config, encoding="utf-8") as file:
            config = json.load(file)
    else:
        config = default_config()
    config = copy.deepcopy(config)
    section = _search_section(config)
    for key, value in (
        ("initial_training_phase_epochs", options.initial_epochs),
        ("patience_epochs", options.patience_epochs),
        ("maximal_total_epochs", options.maximal_total_epochs),
    ):
        if value is not None:
            section[key] = value
    if maximal_total_epochs is not None:
        section["maximal_total_epochs"] = maximal_total_epochs
    section["advance_on_pass"] = bool(advance_on_pass)
    return tf_aat.CompressionConfig.from_dict(config)


# --------------------------------------------------------------- training


def _baseline(options, train, test):
    """Trains the baseline once and caches it; returns (path, accuracy, trained_now)."""
    name = (
        f"baseline_{options.dataset}_{options.model}_e{options.baseline_epochs}"
        f"_n{len(train[0])}_s{options.seed}.keras"
    )
    path = os.path.join(options.output_dir, name)
    trained = not os.path.exists(path)
    keras.utils.set_random_seed(options.seed)
    model = training.load_or_train(
        path,
        lambda: models.MODELS[options.model](input_shape=train[0].shape[1:], classes=10),
        train,
        test,
        epochs=options.baseline_epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        seed=options.seed,
        verbose=0,
    )
    return path, training.accuracy(model, test[0], test[1], options.batch_size), trained


def _fresh_compressed(options, baseline_path, config):
    keras.utils.set_random_seed(options.seed)
    model = keras.models.load_model(baseline_path)
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    training.compile_classifier(compressed, options.learning_rate)
    return ctrl, compressed


# ---------------------------------------------------------------- methods


def run_search(options, baseline_path, baseline_accuracy, train, test, advance_on_pass):
    """The adaptive search in `model.fit`; returns its row of the report."""
    config = build_config(options, advance_on_pass=advance_on_pass)
    params = config.accuracy_aware_training
    ctrl, compressed = _fresh_compressed(options, baseline_path, config)
    callback = tf_aat.AccuracyAwareCallback(
        ctrl,
        config,
        uncompressed_model_accuracy=baseline_accuracy,
        monitor="val_accuracy",
        verbose=options.verbose,
    )
    started = time.time()
    compressed.fit(
        train[0],
        train[1],
        batch_size=options.batch_size,
        epochs=params.maximal_total_epochs,
        validation_data=test,
        callbacks=[callback],
        verbose=0,
    )
    seconds = time.time() - started
    result = callback.result
    returned_accuracy = training.accuracy(compressed, test[0], test[1], options.batch_size)
    return {
        "epochs": int(result.epochs),
        "final_rate": result.compression_rate,
        "final_accuracy": result.compressed_metric,
        "criterion_met": bool(result.criterion_met),
        "returned_model_accuracy": returned_accuracy,
        "returned_model_rate": float(ctrl.compression_rate),
        "stop_reason": result.stop_reason,
        "rates_evaluated": len(result.rates),
        "rates": [
            {"rate": e["rate"], "metric": e["metric"], "passed": bool(e["passed"])}
            for e in result.rates
        ],
        "history": [
            {k: row[k] for k in ("epoch", "phase", "rate", "metric", "passed", "step")}
            for row in result.history
        ],
        "seconds": seconds,
    }


def grid(maximal_rate):
    """Rates 0.025, 0.05, ... up to `maximal_rate` (rounded to the grid)."""
    count = int(math.floor(maximal_rate / GRID_STEP + _EPS))
    return [round(GRID_STEP * k, 6) for k in range(1, count + 1)]


def run_oracle(options, baseline_path, baseline_accuracy, train, test):
    """The exhaustive sweep from the search's own initial-phase checkpoint."""
    params = build_config(options).accuracy_aware_training
    initial = params.initial_training_phase_epochs
    started = time.time()
    if initial:
        # The initial phase exactly as the search runs it (the callback with
        # an epoch budget that ends the search right after it), so the
        # checkpoint is the one the search's first rate starts from.
        config = build_config(options, maximal_total_epochs=initial)
        ctrl, compressed = _fresh_compressed(options, baseline_path, config)
        callback = tf_aat.AccuracyAwareCallback(
            ctrl, config, uncompressed_model_accuracy=baseline_accuracy, verbose=0
        )
        compressed.fit(
            train[0],
            train[1],
            batch_size=options.batch_size,
            epochs=initial,
            validation_data=test,
            callbacks=[callback],
            verbose=0,
        )
        start_rate = callback.result.compression_rate
        start_metric = callback.result.compressed_metric
    else:
        ctrl, compressed = _fresh_compressed(options, baseline_path, build_config(options))
        compressed.optimizer.build(compressed.trainable_variables)
        start_rate, start_metric = float(ctrl.compression_rate), None
    ctrl.disable_scheduler()
    weights = [w.copy() for w in compressed.get_weights()]
    ctrl_state = copy.deepcopy(ctrl.get_state())
    optimizer_state = [v.numpy().copy() for v in compressed.optimizer.variables]

    maximal = min(ctrl.maximal_compression_rate, params.maximal_compression_rate)
    if options.sweep_max is not None:
        maximal = min(maximal, options.sweep_max)
    rows = []
    for rate in grid(maximal):
        compressed.set_weights(weights)
        ctrl.load_state(copy.deepcopy(ctrl_state))
        for variable, value in zip(compressed.optimizer.variables, optimizer_state):
            variable.assign(value)
        keras.utils.set_random_seed(options.seed)
        ctrl.compression_rate = rate
        history = compressed.fit(
            train[0],
            train[1],
            batch_size=options.batch_size,
            epochs=params.patience_epochs,
            validation_data=test,
            verbose=0,
        )
        metrics = [float(m) for m in history.history["val_accuracy"]]
        best = max(metrics)
        rows.append(
            {
                "rate": rate,
                "metric": best,
                "epoch_metrics": metrics,
                "passed": params.meets_criterion(best, baseline_accuracy),
            }
        )
        if options.verbose:
            print(f"  oracle rate {rate:.3f}: best val accuracy {best:.4f}", flush=True)
    seconds = time.time() - started
    passing = [row for row in rows if row["passed"]]
    best_row = max(passing, key=lambda r: r["rate"]) if passing else None
    top_passed = bool(rows and rows[-1]["passed"])
    contiguous = None
    for row in rows:
        if not row["passed"]:
            break
        contiguous = row["rate"]
    epochs = initial + len(rows) * params.patience_epochs
    return {
        "epochs": int(epochs),
        "final_rate": best_row["rate"] if best_row else None,
        "final_accuracy": best_row["metric"] if best_row else None,
        "criterion_met": best_row is not None,
        "initial_phase_checkpoint_rate": start_rate,
        "initial_phase_checkpoint_metric": start_metric,
        "highest_rate_all_below_pass": contiguous,
        "sweep_max": maximal,
        # The top of the sweep passed: a higher rate might pass too, so a
        # search above the sweep is not necessarily wrong.
        "top_of_sweep_passed": top_passed,
        "rates": rows,
        "seconds": seconds,
    }


# ---------------------------------------------------------------- report


def _compare(row, oracle, sweep_epochs):
    target = oracle["final_rate"]
    if row.get("final_rate") is None or target is None:
        row.update(distance_rate=None, distance_steps=None, within_one_step=None)
    else:
        distance = target - row["final_rate"]
        row["distance_rate"] = round(distance, 6)
        row["distance_steps"] = round(distance / GRID_STEP, 3)
        row["within_one_step"] = abs(distance) <= GRID_STEP + _EPS
    row["fewer_epochs_than_sweep"] = row["epochs"] < sweep_epochs
    row["target_met"] = bool(
        row["criterion_met"] and row["within_one_step"] and row["fewer_epochs_than_sweep"]
    )
    oracle_at = {round(r["rate"], 6): r for r in oracle["rates"]}
    if row.get("final_rate") is not None and round(row["final_rate"], 6) in oracle_at:
        match = oracle_at[round(row["final_rate"], 6)]
        row["oracle_metric_at_final_rate"] = match["metric"]
        row["oracle_passed_at_final_rate"] = match["passed"]


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(report):
    header = (
        f"{'method':<24}{'epochs':>7}{'rate':>8}{'val acc':>9}{'met':>6}"
        f"{'d rate':>9}{'d steps':>9}{'target':>8}"
    )
    lines = [header, "-" * len(header)]
    for name in METHODS:
        row = report["methods"].get(name)
        if row is None:
            continue
        target = "-" if name == "oracle" else ("yes" if row.get("target_met") else "NO")
        lines.append(
            f"{name:<24}{row['epochs']:>7d}{_fmt(row['final_rate'], '.3f'):>8}"
            f"{_fmt(row['final_accuracy'], '.4f'):>9}{('yes' if row['criterion_met'] else 'NO'):>6}"
            f"{_fmt(row.get('distance_rate'), '+.3f'):>9}{_fmt(row.get('distance_steps'), '+.1f'):>9}"
            f"{target:>8}"
        )
    oracle = report["methods"].get("oracle")
    if oracle and oracle["rates"]:
        n = report["val_images"]
        lines.append("")
        lines.append(
            f"oracle sweep: rate best-val-acc (correct/{n}), + passes, . misses the "
            f"budget {report['accuracy_budget']:.4f}; all rates pass up to "
            f"{_fmt(oracle['highest_rate_all_below_pass'], '.3f')}"
        )
        cells = [
            f"{r['rate']:.3f} {r['metric']:.4f} ({round(r['metric'] * n)}){'+' if r['passed'] else '.'}"
            for r in oracle["rates"]
        ]
        for start in range(0, len(cells), 4):
            lines.append("  " + "   ".join(cells[start : start + 4]))
        if oracle["top_of_sweep_passed"]:
            lines.append(
                f"NOTE: the top of the sweep ({oracle['sweep_max']:.3f}) passed, so the oracle's "
                "answer is only a lower bound: raise --sweep_max to compare."
            )
    return "\n".join(lines)


def run_benchmark(options):
    """Runs the selected methods; returns the report dict (also written as JSON)."""
    unknown = set(options.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; expected some of {list(METHODS)}.")
    os.makedirs(options.output_dir, exist_ok=True)
    started = time.time()
    train, test = data.load(
        options.dataset, options.cifar10_path, options.train_limit, options.test_limit
    )
    baseline_path, baseline_accuracy, trained = _baseline(options, train, test)
    config = build_config(options)
    params = config.accuracy_aware_training
    image_percent = 100.0 / len(test[0])
    noise = (
        f"Validation accuracy is measured on {len(test[0])} images: one image is "
        f"{image_percent:.3f} percentage points, so differences of a few images between "
        "rates (and between runs) are noise."
    )
    print(f"Baseline {options.model} on {options.dataset}: val accuracy {baseline_accuracy:.4f}")
    print(
        f"Budget: accuracy >= {params.accuracy_budget(baseline_accuracy):.4f} "
        f"({params.maximal_relative_accuracy_degradation}% relative); {noise}",
        flush=True,
    )

    report = {
        "dataset": options.dataset,
        "model": options.model,
        "train_images": len(train[0]),
        "val_images": len(test[0]),
        "one_image_percent": image_percent,
        "noise_note": noise,
        "baseline_path": baseline_path,
        "baseline_epochs": options.baseline_epochs,
        "baseline_trained_now": trained,
        "baseline_accuracy": baseline_accuracy,
        "accuracy_budget": params.accuracy_budget(baseline_accuracy),
        "config": config.to_dict(),
        "accuracy_aware_params": params.to_dict(),
        "grid_step": GRID_STEP,
        "options": dataclasses.asdict(options),
        "methods": {},
    }
    methods = report["methods"]
    # The oracle first: the searches are compared with it.
    if "oracle" in options.methods:
        print("Running the oracle sweep ...", flush=True)
        methods["oracle"] = run_oracle(options, baseline_path, baseline_accuracy, train, test)
    for name, advance in (("search", False), ("search_advance_on_pass", True)):
        if name in options.methods:
            print(f"Running {name} ...", flush=True)
            methods[name] = run_search(
                options, baseline_path, baseline_accuracy, train, test, advance_on_pass=advance
            )
    if "oracle" in methods:
        oracle = methods["oracle"]
        for name in ("search", "search_advance_on_pass"):
            if name in methods:
                _compare(methods[name], oracle, oracle["epochs"])
    report["wall_seconds"] = time.time() - started
    report["table"] = format_table(report)

    output = options.output or os.path.join(options.output_dir, "search_benchmark.json")
    with open(output, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=1, default=float)
    print()
    print(report["table"])
    print(
        "epochs: initial phase included, baseline training not; d rate / d steps: "
        f"oracle's best passing rate minus the method's (grid step {GRID_STEP}); "
        "target: criterion met, |d| <= 1 step, fewer epochs than the sweep."
    )
    print(noise)
    print(f"Wrote {output} ({report['wall_seconds']:.0f} s)")
    return report


def main(argv):
    del argv
    if not FLAGS.verbose:
        # absl shows INFO logs; keep the search's per-epoch lines for --verbose.
        logging.getLogger("tf_aat").setLevel(logging.WARNING)
    options = Options(
        output_dir=FLAGS.output_dir,
        output=FLAGS.output,
        config=FLAGS.config,
        dataset=FLAGS.dataset,
        model=FLAGS.model,
        cifar10_path=FLAGS.cifar10_path,
        train_limit=FLAGS.train_limit,
        test_limit=FLAGS.test_limit,
        baseline_epochs=FLAGS.baseline_epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        initial_epochs=FLAGS.initial_epochs,
        patience_epochs=FLAGS.patience_epochs,
        maximal_total_epochs=FLAGS.maximal_total_epochs,
        sweep_max=FLAGS.sweep_max,
        methods=tuple(FLAGS.methods),
        seed=FLAGS.seed,
        verbose=FLAGS.verbose,
    )
    run_benchmark(options)


if __name__ == "__main__":
    app.run(main)
