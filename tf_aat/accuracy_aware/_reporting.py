"""Per-epoch log lines, TensorBoard scalars and the rate/metric plot."""

import logging
import math
import os

logger = logging.getLogger("tf_aat.accuracy_aware")


def format_epoch(row):
    """One readable line for a history row of the search."""
    step = "-" if row["step"] is None else f"{row['step']:.4g}"
    rate = "-" if row["rate"] is None else f"{row['rate']:.6g}"
    return (
        f"[accuracy-aware] epoch {row['epoch']}: phase={row['phase']} "
        f"rate={rate} metric={row['metric']:.6g} "
        f"budget={row['budget']:.6g} {'PASS' if row['passed'] else 'fail'} "
        f"step={step} lr_scale={row['learning_rate_scale']:.4g}"
    )


def say(message, verbose, pending=None):
    """Shows `message` the way Keras shows its own lines, or logs it when not `verbose`.

    With `verbose`, the line goes to stdout while Keras's interactive logging
    is on, else to absl logging (Keras's `print_msg` route); `pending`, a
    list, holds it back until the caller flushes it (the callback does, once
    Keras's progress bar has finished its line). Without `verbose` it goes to
    the `tf_aat.accuracy_aware` logger at INFO.
    """
    if not verbose:
        logger.info("%s", message)
    elif pending is not None:
        pending.append(message)
    else:
        from tf_aat._progress import print_message

        print_message(message)


def log_epoch(row, verbose, pending=None):
    """Shows the search's line for one epoch (see `say`)."""
    say(format_epoch(row), verbose, pending)


def _has_tensorboard():
    try:
        import tensorboard.summary.v2  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLogger:
    """Writes the search's scalars with `tf.summary` (TF imported lazily).

    Uses `writer` when given, else creates one under `log_dir`; does nothing
    when neither is given.
    """

    def __init__(self, writer=None, log_dir=None):
        self._writer = writer
        self._log_dir = log_dir

    def _get_writer(self):
        if (self._writer is not None or self._log_dir is not None) and not _has_tensorboard():
            logger.warning(
                "TensorBoard is not installed; the accuracy-aware scalars are not written "
                "(pip install tensorboard)."
            )
            self._writer = self._log_dir = None
        if self._writer is None and self._log_dir is not None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(os.path.join(self._log_dir, "tensorboard"))
        return self._writer

    @property
    def active(self):
        """Whether anything will be written (a writer or a log dir was given)."""
        return self._writer is not None or self._log_dir is not None

    def write(self, row, current_rate=None, statistics=None, state=None):
        """Writes one epoch: the search's row, the algorithms' statistics and the search state.

        Args:
            row: the search's history row of the epoch.
            current_rate: the rate the next epoch trains.
            statistics: the controller's `statistics().to_dict()`: its
                numbers become `statistics/<algorithm>/<key>` scalars.
            state: `{name: number}` of the search state, written as
                `accuracy_aware/state/<name>`.
        """
        writer = self._get_writer()
        if writer is None:
            return
        import tensorflow as tf

        scalars = {
            "accuracy_aware/compression_rate": row["rate"],
            "accuracy_aware/metric": row["metric"],
            "accuracy_aware/accuracy_budget": row["budget"],
            "accuracy_aware/criterion_met": float(row["passed"]),
            "accuracy_aware/learning_rate_scale": row["learning_rate_scale"],
        }
        if row["step"] is not None:
            scalars["accuracy_aware/compression_rate_step"] = row["step"]
        if current_rate is not None:
            scalars["accuracy_aware/next_compression_rate"] = current_rate
        for name, value in (state or {}).items():
            scalars[f"accuracy_aware/state/{name}"] = value
        scalars.update(statistics_scalars(statistics))
        with writer.as_default():
            for name, value in scalars.items():
                if value is None:  # no rate: quantization alone
                    continue
                tf.summary.scalar(name, float(value), step=int(row["epoch"]))
        writer.flush()

    def write_result(self, result):
        """Writes the result's summary table as text (`accuracy_aware/result`)."""
        writer = self._get_writer()
        if writer is None:
            return
        import tensorflow as tf

        # TensorBoard renders text as Markdown: indent it so it shows as a table.
        text = "\n".join("    " + line for line in str(result).splitlines())
        with writer.as_default():
            tf.summary.text("accuracy_aware/result", text, step=int(result.epochs))
        writer.flush()


def statistics_scalars(statistics):
    """`{"statistics/<algorithm>/<key>": number}` from a statistics `to_dict()`.

    Reads the numbers at the top of each algorithm's dict (a composite
    controller's dict holds one per algorithm); per-layer lists are left out.
    """
    if not statistics:
        return {}
    parts = statistics if "algorithm" not in statistics else {statistics["algorithm"]: statistics}
    scalars = {}
    for algorithm, values in parts.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if isinstance(value, bool):
                value = float(value)
            if isinstance(value, (int, float)) and math.isfinite(value):
                scalars[f"statistics/{algorithm}/{key}"] = value
    return scalars


def phase_runs(history):
    """The history cut into phases: `(phase, rate, first epoch, last epoch)` per run.

    A run is consecutive epochs of one phase at one rate: the initial phase is
    one run, and each rate the search fine-tunes is one.
    """
    runs = []
    for row in history:
        phase = row["phase"]
        key = (phase, None if phase != "search" else row["rate"])
        if runs and runs[-1][0] == key:
            runs[-1][1][1] = row["epoch"]
        else:
            runs.append((key, [row["epoch"], row["epoch"]]))
    return [(key[0], key[1], first, last) for key, (first, last) in runs]


def returned_point(result):
    """`(epoch, rate, metric)` of the epoch the returned model comes from, or None."""
    for entry in result.rates:
        if entry.get("checkpoint") == result.checkpoint:
            return entry["epoch"], entry["rate"], entry["metric"]
    return None


_PHASE_COLORS = {"initial": "#dde8f5", "search": "#f3f3f3", "early_exit": "#e9f3e1"}
_PHASE_NAMES = {"initial": "initial phase", "search": "search", "early_exit": "early exit"}


def search_figure(result):
    """The search as a matplotlib figure (see `plot_result`); the caller closes it.

    Two panels share the epoch axis: the compression rate each epoch trained
    (top) and the validation metric with the accuracy budget, the lowest
    metric that meets the criterion (the highest, for a metric to minimise),
    drawn as a line (bottom). Each phase is shaded; the epoch whose weights
    the returned model has is circled in both panels.
    """
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    history = result.history
    epochs = [row["epoch"] for row in history]
    rates = [math.nan if row["rate"] is None else row["rate"] for row in history]
    metrics = [row["metric"] for row in history]
    figure, (rate_axis, metric_axis) = pyplot.subplots(
        2, 1, sharex=True, figsize=(8, 6), gridspec_kw={"height_ratios": [1, 1.3]}
    )
    for index, (phase, rate, first, last) in enumerate(phase_runs(history)):
        color = _PHASE_COLORS.get(phase, "#f3f3f3")
        if phase == "search" and index % 2:
            color = "#e6e6e6"  # neighbouring rates of the search alternate
        for axis in (rate_axis, metric_axis):
            axis.axvspan(first - 0.5, last + 0.5, color=color, zorder=0, label="_phase")
        name = _PHASE_NAMES.get(phase, phase)
        if phase == "search":
            name = f"rate {rate:.3g}" if rate is not None else name
        rate_axis.annotate(
            name,
            xy=((first + last) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
            color="0.35",
        )
    rate_axis.step(epochs, rates, where="mid", color="tab:blue", label="compression rate")
    rate_axis.plot(epochs, rates, "o", color="tab:blue", markersize=3, label="_rate points")
    rate_axis.set_ylabel("compression rate")
    rate_axis.grid(axis="y", alpha=0.4)
    if all(math.isnan(rate) for rate in rates):
        rate_axis.text(
            0.5,
            0.5,
            "no compression rate (the algorithm has none: quantization alone)",
            transform=rate_axis.transAxes,
            ha="center",
            va="center",
            color="0.35",
        )
        rate_axis.set_yticks([])

    metric_axis.plot(epochs, metrics, "-", color="tab:orange", label="validation metric")
    passed = [(e, m) for e, m, row in zip(epochs, metrics, history) if row["passed"]]
    failed = [(e, m) for e, m, row in zip(epochs, metrics, history) if not row["passed"]]
    if passed:
        metric_axis.plot(*zip(*passed), "o", color="tab:green", markersize=5, label="meets")
    if failed:
        metric_axis.plot(*zip(*failed), "x", color="tab:red", markersize=6, label="fails")
    metric_axis.axhline(
        result.accuracy_budget,
        color="tab:red",
        linestyle="--",
        label=f"accuracy budget ({result.accuracy_budget:.4g})",
    )
    metric_axis.axhline(
        result.uncompressed_metric,
        color="0.4",
        linestyle=":",
        label=f"uncompressed ({result.uncompressed_metric:.4g})",
    )
    metric_axis.set_ylabel("validation metric")
    metric_axis.set_xlabel("epoch")
    metric_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    metric_axis.grid(axis="y", alpha=0.4)

    point = returned_point(result)
    if point is not None:
        epoch, rate, metric = point
        circle = {"s": 220, "facecolors": "none", "edgecolors": "black", "linewidths": 1.8}
        if rate is not None:
            rate_axis.scatter([epoch], [rate], zorder=5, label="returned model", **circle)
        metric_axis.scatter([epoch], [metric], zorder=5, label="returned model", **circle)
    rate_axis.legend(loc="upper left", fontsize=8)
    metric_axis.legend(loc="lower left", fontsize=8, ncol=2)
    status = "met" if result.criterion_met else "NOT met"
    rate_text = "-" if result.compression_rate is None else f"{result.compression_rate:.4g}"
    figure.suptitle(f"Accuracy-aware search: returned rate {rate_text}, criterion {status}")
    figure.tight_layout()
    return figure


def plot_result(result, path):
    """Saves a PNG of the search (`search_figure`); returns its path.

    Returns None (with a warning) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib import pyplot
    except ImportError:
        logger.warning("matplotlib is not installed; skipping the accuracy-aware plot %s.", path)
        return None
    figure = search_figure(result)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
