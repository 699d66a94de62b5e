"""What the search prints: its lines never land inside Keras's progress bar, they take
Keras's own route (stdout, or absl when interactive logging is off), and a resume says
what it restored."""

import sys

import keras
import numpy as np
import pytest

from tf_aat.accuracy_aware import AccuracyAwareCallback

from . import oracles
from .callback_test import InjectMetric, make_model
from .fakes import FakeController

SCENARIO = "oscillates_to_step_limit"


def _fit(verbose, fit_verbose=1, log_dir=None, resume=False, crash_at=None, epochs=50):
    overrides, levels, maximal, oracle, *_ = oracles.SCENARIOS[SCENARIO]
    model, rate_layer = make_model(0.1)
    ctrl = FakeController(rate_layer, levels, maximal_compression_rate=maximal)
    config = {"compression": {"accuracy_aware_training": oracles.seed_section(**overrides)}}
    callback = AccuracyAwareCallback(
        ctrl, config, oracles.UNCOMPRESSED, log_dir=log_dir, resume=resume, verbose=verbose
    )
    x, y = np.ones((8, 1)), np.zeros((8, 1))
    model.fit(
        x,
        y,
        batch_size=2,  # four steps: the bar moves within each epoch
        epochs=epochs,
        verbose=fit_verbose,
        callbacks=[InjectMetric(oracle, crash_at), callback],
    )
    return callback


@pytest.fixture
def terminal(capsys, monkeypatch):
    """Captured stdout that Keras takes for a terminal (so its bar redraws with \\r)."""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    return capsys


def test_search_lines_never_interleave_with_the_progress_bar(terminal):
    callback = _fit(verbose=1)
    out = terminal.readouterr().out
    lines = out.split("\n")
    epoch_lines = [i for i, line in enumerate(lines) if "[accuracy-aware] epoch" in line]
    assert len(epoch_lines) == callback.result.epochs > 3
    for index in epoch_lines:
        # Whole lines of their own, not appended to (or cut into) a bar line...
        assert lines[index].startswith("[accuracy-aware] epoch"), repr(lines[index])
        assert "\r" not in lines[index] and "━" not in lines[index]
        # ...each right after the finished bar of its epoch, which shows the
        # metric the search read.
        assert "val_accuracy" in lines[index - 1] and "━" in lines[index - 1]
    # Every epoch header comes after the previous epoch's search line.
    headers = [i for i, line in enumerate(lines) if line.startswith("Epoch ")]
    for before, after in zip(epoch_lines, headers[1:]):
        assert before < after
    # The summary comes after the last bar.
    assert out.rindex("Accuracy-aware training result") > out.rindex("━")


def test_search_lines_take_the_absl_route_when_interactive_logging_is_off(capsys, caplog):
    keras.config.disable_interactive_logging()
    try:
        with caplog.at_level("INFO"):
            _fit(verbose=1, fit_verbose=0)
    finally:
        keras.config.enable_interactive_logging()
    assert "[accuracy-aware]" not in capsys.readouterr().out
    absl_lines = [r.getMessage() for r in caplog.records if r.name == "absl"]
    assert any(line.startswith("[accuracy-aware] epoch 0:") for line in absl_lines)


def test_verbose_zero_prints_nothing_and_logs_the_lines(capsys, caplog):
    with caplog.at_level("INFO", "tf_aat.accuracy_aware"):
        _fit(verbose=0, fit_verbose=0)
    assert capsys.readouterr().out == ""
    assert "[accuracy-aware] epoch 0:" in caplog.text


def test_resume_says_what_it_restored(tmp_path, capsys):
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(verbose=0, fit_verbose=0, log_dir=str(tmp_path), crash_at=4)
    capsys.readouterr()
    callback = _fit(verbose=1, fit_verbose=0, log_dir=str(tmp_path), resume=True)
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "Resumed the search" in line]
    assert "4 epochs trained" in line
    assert "learning rate scale" in line and "phase " in line
    best = [r for r in callback.result.history if r["epoch"] < 4]
    assert "best so far: metric" in line
    # The best passing epoch before the crash is the one the line names.
    passed = [r for r in best if r["passed"]]
    top = max(passed, key=lambda r: (r["rate"], r["metric"]))
    assert f"at rate {top['rate']:.6g} (epoch {top['epoch']}, meets the criterion)" in line
    # It is said before the first epoch of the resumed fit.
    assert out.index("Resumed the search") < out.index("[accuracy-aware] epoch 4:")
