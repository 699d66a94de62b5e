"""The keras.applications coverage benchmark end to end on two families (~40 s on 2 cores)."""

import json

import pytest

pytest.importorskip("absl")

from tests.scripts import run_module, run_script  # noqa: E402


def test_two_families_are_pruned_exactly_and_reported(tmp_path):
    output = tmp_path / "coverage.json"
    stdout = run_module(
        "examples.benchmarks.coverage_benchmark",
        "--models=MobileNetV3Small,ConvNeXtTiny",
        f"--output={output}",
    )
    results = json.loads(output.read_text())
    rows = {row["model"]: row for row in results["models"]}
    assert set(rows) == {"MobileNetV3Small", "ConvNeXtTiny"}
    for row in rows.values():
        assert row["ok"], row
        assert row["prunable_groups"] > 0
        assert row["parameters_after"] < row["parameters_before"]
        assert row["relative_error"] <= 1e-4
        assert row["strip_seconds"] > 0
    # ConvNeXt's residual stream meets LayerNormalization: blocked, with the reason.
    reasons = " ".join(r["reason"] for r in rows["ConvNeXtTiny"]["blocked_reasons"])
    assert "LayerNormalization" in reasons
    assert results["summary"]["pruned_exactly"] == 2 and results["summary"]["crashed"] == []
    assert "2 of 2 families pruned exactly" in stdout


def test_an_unknown_architecture_is_refused_before_any_work(tmp_path):
    result = run_script(
        "examples.benchmarks.coverage_benchmark",
        "--models=NotANet",
        f"--output={tmp_path / 'c.json'}",
    )
    assert result.returncode != 0
    assert "NotANet" in result.stderr
