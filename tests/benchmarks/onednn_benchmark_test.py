"""The oneDNN on/off benchmark end to end with tiny flags: two worker processes,
one per mode, their rounds alternating. Timings are not checked here."""

import json

import pytest

pytest.importorskip("absl")

from tests.scripts import run_module  # noqa: E402


def test_tiny_run_times_both_modes_and_writes_the_ratio(tmp_path):
    output = tmp_path / "results" / "onednn.json"  # the directory is created
    out = run_module(
        "examples.benchmarks.onednn_benchmark",
        "--batch_size=4",
        "--warmup_steps=1",
        "--rounds=2",
        "--steps=1",
        "--models=keras3_float",
        f"--output={output}",
    )
    results = json.loads(output.read_text())

    # Each worker really ran in its mode, whatever this CPU's default.
    assert results["onednn_enabled"] == {"0": False, "1": True}
    assert results["rounds"] == 2 and results["steps"] == 1
    per_step = results["per_step_seconds"]
    assert {mode: list(models) for mode, models in per_step.items()} == {
        "onednn_off": ["keras3_float"],
        "onednn_on": ["keras3_float"],
    }
    # 2 rounds x 1 step per mode; the figure is their median.
    for mode in ("onednn_off", "onednn_on"):
        times = per_step[mode]["keras3_float"]
        assert len(times) == 2 and all(seconds > 0 for seconds in times)
        assert results["train_step_seconds"][mode]["keras3_float"] == pytest.approx(sum(times) / 2)
    off = results["train_step_seconds"]["onednn_off"]["keras3_float"]
    on = results["train_step_seconds"]["onednn_on"]["keras3_float"]
    assert results["off_over_on"]["keras3_float"] == pytest.approx(off / on)
    assert "oneDNN off ms" in out and "keras3_float" in out


def test_unknown_model_is_refused():
    from tests.scripts import run_script

    result = run_script("examples.benchmarks.onednn_benchmark", "--models=resnet50")
    assert result.returncode != 0
    assert "Expected --models from" in result.stdout + result.stderr
