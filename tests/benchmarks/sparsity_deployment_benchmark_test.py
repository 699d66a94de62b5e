"""The sparsity deployment benchmark end to end with tiny flags (~1 min on 2 cores)."""

import json

import pytest

pytest.importorskip("absl")

from tests.scripts import run_module  # noqa: E402


def test_tiny_run_measures_dense_and_sparse_files_per_level(tmp_path):
    output = tmp_path / "sparsity_deployment.json"
    out = run_module(
        "examples.benchmarks.sparsity_deployment_benchmark",
        "--levels=0,0.9",
        "--rounds=1",
        "--runs=2",
        "--samples=8",
        f"--output={output}",
    )
    results = json.loads(output.read_text())
    rows = {row["name"]: row for row in results["rows"]}
    assert list(rows) == ["0/dense", "0/sparse", "0.9/dense", "0.9/sparse"]
    assert results["mode"] == "local"
    for row in rows.values():
        assert row["int8"] and row["verification"]["passed"]
        assert row["latency_ms_builtin"] > 0
        # XNNPACK is timed exactly where it can prepare the file.
        assert (row["latency_ms_xnnpack"] is None) == bool(row["xnnpack_error"])
    assert rows["0/dense"]["zero_fraction"] == 0.0
    assert rows["0.9/dense"]["zero_fraction"] == pytest.approx(0.9, abs=0.01)
    # Dense storage does not shrink with zeros; the sparse encoding does.
    assert rows["0.9/dense"]["size_bytes"] == pytest.approx(rows["0/dense"]["size_bytes"], rel=0.02)
    assert rows["0.9/sparse"]["size_bytes"] < 0.6 * rows["0.9/dense"]["size_bytes"]
    assert rows["0.9/sparse"]["densify_op"] and not rows["0.9/dense"]["densify_op"]
    assert "0.9    0.900  sparse" in out
