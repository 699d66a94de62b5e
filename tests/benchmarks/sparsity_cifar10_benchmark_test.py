"""The CIFAR-10 sparse + int8 benchmark end to end: a tiny main job with the shipped
sparsity config on a tiny CIFAR-10-format archive, then the benchmark on its output."""

import json

import pytest

pytest.importorskip("absl")

from tests.scripts import ROOT, run_module, run_script  # noqa: E402

CONFIGS = ROOT / "examples" / "configs"


@pytest.mark.slow
def test_the_searched_level_is_measured_against_dense_int8(tmp_path, cifar10_archive):
    job = tmp_path / "job"
    run_module(
        "examples.compress",
        f"--log_dir={job}",
        "--dataset=cifar10",
        f"--cifar10_path={cifar10_archive}",
        "--model=resnet20",
        f"--config={CONFIGS / 'cifar10_resnet20_sparsity_int8.json'}",
        "--baseline_epochs=1",
        "--epochs=3",
        "--verbose=0",
    )
    output = tmp_path / "sparsity_cifar10.json"
    out = run_module(
        "examples.benchmarks.sparsity_cifar10_benchmark",
        f"--cifar10_path={cifar10_archive}",
        f"--job_dir={job}",
        "--calibration=32",
        "--rounds=1",
        "--runs=2",
        f"--output={output}",
    )
    results = json.loads(output.read_text())
    rows = {row["name"]: row for row in results["rows"]}
    assert list(rows) == ["dense int8", "sparse, dense storage", "sparse, sparse storage"]
    level = results["job"]["compression_rate"]
    assert level >= 0.5  # the config's initial level, or one the search went up to
    assert rows["dense int8"]["zero_fraction"] < 0.01
    for name in ("sparse, dense storage", "sparse, sparse storage"):
        # The file holds the searched model: its zeros are the level the search reported
        # (global mode: the level over all sparsified kernels).
        assert rows[name]["zero_fraction"] == pytest.approx(level, abs=0.01)
    for row in rows.values():
        # Every value within 2 int8 steps of the Keras model's (a one-epoch model's
        # near-equal logits may swap their top-1, so agreement is not asserted).
        assert row["int8"] and row["verification"]["within_tolerance"] >= 0.99
        assert 0.0 <= row["tflite_accuracy"] <= 1.0
        assert row["latency_ms_builtin"] > 0
        assert (row["latency_ms_xnnpack"] is None) == bool(row["xnnpack_error"])
    dense, sparse = rows["sparse, dense storage"], rows["sparse, sparse storage"]
    assert dense["size_bytes"] == pytest.approx(rows["dense int8"]["size_bytes"], rel=0.02)
    # The job exported the same model (with representative data): a prediction or two apart.
    assert dense["tflite_accuracy"] == pytest.approx(
        results["job"]["tflite_accuracy"], abs=2 / results["test_images"]
    )
    # The sparse encoding stores the same int8 weights: the same predictions.
    assert sparse["tflite_accuracy"] == pytest.approx(dense["tflite_accuracy"], abs=1e-9)
    assert "sparse, sparse storage" in out

    # The README section renders from this JSON.
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={tmp_path}")
    text = readme.read_text()
    assert f"level found {level:.3f}" in text
    assert "| sparse, sparse storage |" in text and "| dense int8 | 0.0% |" in text


def test_a_job_without_sparsity_is_refused_with_the_command(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.json").write_text(
        json.dumps({"config": "pruning.json", "statistics": {"algorithm": "filter_pruning"}})
    )
    result = run_script(
        "examples.benchmarks.sparsity_cifar10_benchmark",
        "--cifar10_path=/nope.npz",
        f"--job_dir={job}",
        timeout=120,
    )
    assert result.returncode != 0
    assert "cifar10_resnet20_sparsity_int8.json" in result.stderr
