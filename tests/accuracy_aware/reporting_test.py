"""The search plot's content (panels, lines, the returned point) and what TensorBoard gets."""

import os

import numpy as np
import pytest

from tf_aat.accuracy_aware import AccuracyAwareCallback
from tf_aat.accuracy_aware._reporting import phase_runs, plot_result, search_figure

from . import oracles
from .callback_test import InjectMetric, make_model
from .fakes import FakeController
from .search_test import drive, make_search

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402


@pytest.fixture
def result():
    """A run with an initial phase, a climb, a failure, a step back and a pass."""
    overrides, levels, maximal, oracle, *_ = oracles.SCENARIOS["oscillates_to_step_limit"]
    search = make_search(overrides, maximal)
    drive(search, levels, oracle)
    result = search.result()
    assert result.criterion_met and len({row["phase"] for row in result.history}) == 2
    return result


def _line(axis, label):
    (line,) = [line for line in axis.get_lines() if line.get_label().startswith(label)]
    return line


def test_plot_has_a_rate_panel_and_a_metric_panel_on_one_epoch_axis(result):
    figure = search_figure(result)
    try:
        rate_axis, metric_axis = figure.axes
        assert rate_axis.get_shared_x_axes().joined(rate_axis, metric_axis)
        assert rate_axis.get_ylabel() == "compression rate"
        assert metric_axis.get_ylabel() == "validation metric"
        assert metric_axis.get_xlabel() == "epoch"
        epochs = [row["epoch"] for row in result.history]
        rate = _line(rate_axis, "compression rate")
        assert list(rate.get_xdata()) == epochs
        assert list(rate.get_ydata()) == [row["rate"] for row in result.history]
        metric = _line(metric_axis, "validation metric")
        assert list(metric.get_ydata()) == [row["metric"] for row in result.history]
        # The budget is a metric value, drawn on the metric panel only.
        budget = _line(metric_axis, "accuracy budget")
        assert set(budget.get_ydata()) == {result.accuracy_budget}
        assert not [x for x in rate_axis.get_lines() if "budget" in x.get_label()]
        assert set(_line(metric_axis, "uncompressed").get_ydata()) == {result.uncompressed_metric}
        # Passing and failing epochs are told apart.
        passed = _line(metric_axis, "meets")
        assert len(passed.get_xdata()) == sum(row["passed"] for row in result.history)
    finally:
        pyplot.close(figure)


def test_plot_circles_the_returned_model_in_both_panels(result):
    figure = search_figure(result)
    try:
        (entry,) = [e for e in result.rates if e["checkpoint"] == result.checkpoint]
        expected = {
            "rate": (entry["epoch"], result.compression_rate),
            "metric": (entry["epoch"], result.compressed_metric),
        }
        for axis, key in zip(figure.axes, ("rate", "metric")):
            (circle,) = [c for c in axis.collections if c.get_label() == "returned model"]
            assert tuple(circle.get_offsets()[0]) == pytest.approx(expected[key])
            assert "returned model" in [t.get_text() for t in axis.get_legend().get_texts()]
    finally:
        pyplot.close(figure)


def test_plot_marks_each_phase(result):
    runs = phase_runs(result.history)
    # The initial phase, then one run per rate the search fine-tuned.
    assert runs[0][0] == "initial"
    search_rates = [row["rate"] for row in result.history if row["phase"] == "search"]
    assert [rate for phase, rate, *_ in runs[1:]] == [
        r for i, r in enumerate(search_rates) if i == 0 or r != search_rates[i - 1]
    ]
    figure = search_figure(result)
    try:
        rate_axis = figure.axes[0]
        spans = [p for p in rate_axis.patches if p.get_label() == "_phase"]
        assert len(spans) == len(runs)
        labels = [t.get_text() for t in rate_axis.texts]
        assert labels[0] == "initial phase"
        assert labels[1:] == [f"rate {rate:.3g}" for _, rate, *_ in runs[1:]]
        # Spans cover each run's epochs and touch each other.
        for span, (_, _, first, last) in zip(spans, runs):
            x0 = span.get_x() if hasattr(span, "get_x") else span.get_xy()[0][0]
            assert x0 == pytest.approx(first - 0.5)
    finally:
        pyplot.close(figure)


def test_plot_result_writes_a_png(result, tmp_path):
    path = plot_result(result, str(tmp_path / "search.png"))
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


# -- TensorBoard ----------------------------------------------------------------


class _Statistics:
    def __init__(self, rate):
        self.rate = rate

    def to_dict(self):
        return {
            "filter_pruning": {
                "algorithm": "filter_pruning",
                "compression_rate": self.rate,
                "current_params": 100 - int(100 * self.rate),
                "target_reached": True,
                "layers": [{"name": "conv"}],
            }
        }


def _events(log_dir):
    import tensorflow as tf

    scalars, texts = {}, {}
    for root, _, files in os.walk(log_dir):
        for name in files:
            if not name.startswith("events.out.tfevents"):
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    array = tf.make_ndarray(value.tensor)
                    if value.metadata.plugin_data.plugin_name == "text":
                        texts[value.tag] = array.item().decode()
                    else:
                        scalars.setdefault(value.tag, []).append((event.step, float(array)))
    return scalars, texts


def test_tensorboard_gets_rates_statistics_search_state_and_a_text_summary(tmp_path):
    pytest.importorskip("tensorboard")
    overrides, levels, maximal, oracle, *_ = oracles.SCENARIOS["oscillates_to_step_limit"]
    model, rate_layer = make_model(0.1)
    ctrl = FakeController(rate_layer, levels, maximal_compression_rate=maximal)
    ctrl.statistics = lambda full=False: _Statistics(ctrl.compression_rate)
    config = {"compression": {"accuracy_aware_training": oracles.seed_section(**overrides)}}
    callback = AccuracyAwareCallback(
        ctrl, config, oracles.UNCOMPRESSED, log_dir=str(tmp_path), verbose=0
    )
    model.fit(
        np.ones((1, 1)),
        np.zeros((1, 1)),
        epochs=50,
        verbose=0,
        callbacks=[InjectMetric(oracle), callback],
    )
    result = callback.result
    scalars, texts = _events(tmp_path / "tensorboard")
    epochs = [row["epoch"] for row in result.history]
    rates = scalars["accuracy_aware/compression_rate"]
    assert rates == [(e, pytest.approx(row["rate"])) for e, row in zip(epochs, result.history)]
    # Each algorithm's statistics, one scalar per number (lists left out).
    assert [step for step, _ in scalars["statistics/filter_pruning/current_params"]] == epochs
    assert scalars["statistics/filter_pruning/target_reached"][0][1] == 1.0
    assert not [tag for tag in scalars if tag.endswith("/layers")]
    # The search state after each epoch: its phase code moves from the search (1)
    # to finished (3), never back.
    phases = [value for _, value in scalars["accuracy_aware/state/phase"]]
    assert phases == sorted(phases) and phases[0] in (0, 1) and phases[-1] == 3
    assert [v for _, v in scalars["accuracy_aware/state/epochs_trained"]] == [e + 1 for e in epochs]
    assert scalars["accuracy_aware/state/best_passing_compression_rate"][-1][1] == pytest.approx(
        result.compression_rate
    )
    # The result as text: the same table `print(result)` shows.
    text = texts["accuracy_aware/result"]
    assert "Accuracy-aware training result" in text
    assert f"compression rate:    {result.compression_rate:.6g}" in text


def test_plot_without_a_rate_says_so_and_circles_the_metric_only():
    from tf_aat.accuracy_aware import AccuracyAwareResult

    history = [
        {
            "epoch": epoch,
            "phase": "early_exit",
            "rate": None,
            "metric": metric,
            "budget": 0.92,
            "passed": metric >= 0.92,
            "step": None,
            "learning_rate_scale": 1.0,
        }
        for epoch, metric in enumerate([0.90, 0.91, 0.925])
    ]
    result = AccuracyAwareResult(
        compression_rate=None,
        compressed_metric=0.925,
        uncompressed_metric=0.93,
        accuracy_budget=0.92,
        criterion_met=True,
        epochs=3,
        checkpoint="best",
        stop_reason="criterion met",
        mode="early_exit",
        rates=[{"rate": None, "metric": 0.925, "epoch": 2, "passed": True, "checkpoint": "best"}],
        history=history,
    )
    figure = search_figure(result)
    try:
        rate_axis, metric_axis = figure.axes
        assert any("no compression rate" in t.get_text() for t in rate_axis.texts)
        assert not [c for c in rate_axis.collections if c.get_label() == "returned model"]
        (circle,) = [c for c in metric_axis.collections if c.get_label() == "returned model"]
        assert tuple(circle.get_offsets()[0]) == pytest.approx((2, 0.925))
    finally:
        pyplot.close(figure)
