"""The filter-pruning scale benchmark end to end with tiny flags (~20 s on 2 cores).

Run as a subprocess, as a user runs it: absl flags of several example scripts
clash in one process. Timings are not checked against the targets here.
"""

import json

import pytest

pytest.importorskip("absl")

from tests.scripts import run_module  # noqa: E402


def test_tiny_run_writes_fpgm_rows_and_resnet50_timings(tmp_path):
    output = tmp_path / "results" / "scale.json"  # the directory is created
    stdout = run_module(
        "examples.benchmarks.scale_benchmark",
        "--fpgm_max_filters=256",
        "--fpgm_repeats=1",
        "--resnet50_size=32",
        f"--output={output}",
    )
    results = json.loads(output.read_text())

    rows = results["fpgm_scaling"]
    assert [row["filters"] for row in rows] == [64, 128, 256]
    for row in rows:
        assert row["kernel_shape"] == [3, 3, 512, row["filters"]]
        assert row["values_per_filter"] == 3 * 3 * 512
        assert 0 < row["seconds"] <= row["median_seconds"]
        single = row["single_thread_seconds"]
        assert single is None or single > 0
        assert row["repeats"] == 1

    r50 = results["resnet50"]
    assert r50["input_size"] == 32
    for key in ("create_compressed_model_s", "recompute_all_masks_s", "strip_s"):
        assert r50[key] > 0, key
    assert r50["recompute_target_s"] == 2.0
    assert r50["strip_target_s"] == 20.0
    assert r50["final_rate"] == pytest.approx(0.4)
    assert r50["params_stripped"] < r50["params_full"]

    assert "3x3x512x256" in stdout
    assert "recompute all masks" in stdout and "strip_model" in stdout
