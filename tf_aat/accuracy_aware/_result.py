"""The outcome of an accuracy-aware run (pure Python)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class AccuracyAwareResult:
    """What an accuracy-aware run found.

    Attributes:
        compression_rate: rate of the returned model.
        compressed_metric: validation metric of the returned model.
        uncompressed_metric: metric of the uncompressed model.
        accuracy_budget: lowest metric that meets the criterion.
        criterion_met: whether the returned model meets the criterion; if
            False, no rate met it and the best-metric model was returned.
        epochs: epochs trained in total.
        checkpoint: key of the checkpoint the returned model was loaded from.
        stop_reason: why the search stopped (None if it has not).
        mode: `"adaptive_compression_level"` or `"early_exit"`.
        rates: best epoch per rate, sorted by rate: dicts with `rate`,
            `metric`, `epoch`, `passed`, `checkpoint`.
        history: one dict per epoch: `epoch`, `phase`, `rate`, `metric`,
            `budget`, `passed`, `step` (None outside the search phase),
            `learning_rate_scale`.
        stripped_metric: the metric re-measured on `ctrl.strip_model(model)`
            of the returned model, the model that is deployed (the runner's
            `validate_fn`); None where it was not measured. It equals
            `compressed_metric` when strip changes no output.
    """

    compression_rate: float | None
    compressed_metric: float | None
    uncompressed_metric: float
    accuracy_budget: float
    criterion_met: bool
    epochs: int
    checkpoint: str | None
    stop_reason: str | None
    mode: str
    rates: list
    history: list
    stripped_metric: float | None = None

    @property
    def rate_trajectory(self):
        """Rates of the epochs, in training order."""
        return [row["rate"] for row in self.history]

    def to_dict(self):
        """The result as plain JSON (what `accuracy_aware_result.json` holds).

        Returns:
            A dict with every attribute listed in the class docstring; `rates`
            and `history` are lists of dicts.
        """
        return dataclasses.asdict(self)

    def __str__(self):
        status = "MET" if self.criterion_met else "NOT MET (best-metric model returned)"
        lines = [
            "Accuracy-aware training result",
            f"  mode:                {self.mode}",
            f"  criterion:           {status}",
            f"  compression rate:    {_number(self.compression_rate)}",
            f"  compressed metric:   {_number(self.compressed_metric)}",
            f"  stripped metric:     {_number(self.stripped_metric)}"
            + ("" if self.stripped_metric is None else " (re-measured after strip_model)"),
            f"  uncompressed metric: {_number(self.uncompressed_metric)}",
            f"  accuracy budget:     {_number(self.accuracy_budget)}",
            f"  epochs trained:      {self.epochs}",
            f"  stop reason:         {self.stop_reason}",
            "",
            _table(
                ["rate", "best metric", "epoch", "passed"],
                [
                    [
                        _number(r["rate"]),
                        _number(r["metric"]),
                        r["epoch"],
                        _yes(r["passed"]),
                    ]
                    for r in self.rates
                ],
            ),
            "",
            _table(
                [
                    "epoch",
                    "phase",
                    "rate",
                    "metric",
                    "budget",
                    "passed",
                    "step",
                    "lr scale",
                ],
                [
                    [
                        h["epoch"],
                        h["phase"],
                        _number(h["rate"]),
                        _number(h["metric"]),
                        _number(h["budget"]),
                        _yes(h["passed"]),
                        _number(h["step"]),
                        _number(h["learning_rate_scale"]),
                    ]
                    for h in self.history
                ],
            ),
        ]
        return "\n".join(lines)


def _number(value):
    if value is None:
        return "-"
    return f"{value:.6g}"


def _yes(value):
    return "yes" if value else "no"


def _table(header, rows):
    cells = [header] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  " + " | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))

    separator = "  " + "-+-".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), separator] + [line(row) for row in cells[1:]])
