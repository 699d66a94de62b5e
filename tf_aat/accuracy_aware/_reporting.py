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


def log_epoch(row, verbose):
    line = format_epoch(row)
    logger.info(line)
    if verbose:
        print(line, flush=True)


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

    def write(self, row, current_rate=None):
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
        with writer.as_default():
            for name, value in scalars.items():
                if value is None:  # no rate: quantization alone
                    continue
                tf.summary.scalar(name, float(value), step=int(row["epoch"]))
        writer.flush()


def plot_result(result, path):
    """Saves a PNG of the rate and the metric per epoch; returns its path.

    Returns None (with a warning) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib import pyplot
    except ImportError:
        logger.warning("matplotlib is not installed; skipping the accuracy-aware plot %s.", path)
        return None
    epochs = [row["epoch"] for row in result.history]
    rates = [math.nan if row["rate"] is None else row["rate"] for row in result.history]
    metrics = [row["metric"] for row in result.history]
    figure, rate_axis = pyplot.subplots(figsize=(8, 4.5))
    rate_axis.step(epochs, rates, where="mid", color="tab:blue", label="compression rate")
    rate_axis.set_xlabel("epoch")
    rate_axis.set_ylabel("compression rate", color="tab:blue")
    metric_axis = rate_axis.twinx()
    metric_axis.plot(epochs, metrics, "o-", color="tab:orange", label="metric")
    metric_axis.axhline(result.accuracy_budget, color="tab:red", linestyle="--", label="budget")
    metric_axis.set_ylabel("metric", color="tab:orange")
    status = "met" if result.criterion_met else "NOT met"
    rate_text = "-" if result.compression_rate is None else f"{result.compression_rate:.4g}"
    rate_axis.set_title(f"Accuracy-aware search: rate {rate_text}, criterion {status}")
    figure.legend(loc="lower center", ncol=3)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
