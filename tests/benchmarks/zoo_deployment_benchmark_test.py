"""The zoo deployment benchmark end to end on one family (~40 s on 2 cores)."""

import json

import pytest

pytest.importorskip("absl")

from tests.scripts import run_module  # noqa: E402


def test_mobilenet_v3_with_its_softmax_head_deploys_all_int8(tmp_path):
    output = tmp_path / "zoo.json"
    stdout = run_module(
        "examples.benchmarks.zoo_deployment_benchmark",
        "--models=MobileNetV3Small",
        "--calibration=8",
        "--verify=4",
        f"--output={output}",
    )
    results = json.loads(output.read_text())
    (row,) = results["models"]
    assert row["ok"], row
    assert row["float_heavy_ops"] == []
    assert row["strip_error"] <= 1e-3
    assert row["tflite_error"] <= 0.05
    assert row["tflite_builtin_error"] >= 0.0 and row["runtimes_error"] >= 0.0
    assert row["parameters_after"] < row["parameters_before"]
    assert results["summary"]["deployed"] == 1
    assert "1 of 1 families deployed" in stdout
