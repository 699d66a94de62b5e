"""The training-cost benchmark end to end with tiny flags (~50 s on 2 cores).

Run as a subprocess, as a user runs it: absl flags of several example scripts
clash in one process. Timings are not checked against the targets here.
"""

import importlib.util
import json

import pytest

pytest.importorskip("absl")

from tests.scripts import run_module  # noqa: E402

KERAS3_VARIANTS = (
    "keras3_float",
    "tf_aat_masks",
    "tf_aat_qat",
    "tf_aat_masks_qat",
    "tf_aat_sparsity",
)
TFMOT_VARIANTS = ("tf_keras_float", "tfmot_qat")
QUOTIENTS = {
    "masks": ("tf_aat_masks", "keras3_float"),
    "qat": ("tf_aat_qat", "keras3_float"),
    "masks_qat": ("tf_aat_masks_qat", "keras3_float"),
    "sparsity": ("tf_aat_sparsity", "keras3_float"),
    "tfmot": ("tfmot_qat", "tf_keras_float"),
}


def _tfmot_installed():
    return all(
        importlib.util.find_spec(name) for name in ("tf_keras", "tensorflow_model_optimization")
    )


def run_benchmark(output, *flags):
    return run_module(
        "examples.benchmarks.training_cost_benchmark",
        "--batch_size=8",
        "--warmup_steps=1",
        "--rounds=1",
        "--steps=1",
        f"--output={output}",
        *flags,
    )


def test_tiny_run_writes_times_ratios_and_targets(tmp_path):
    output = tmp_path / "results" / "training_cost.json"  # the directory is created
    out = run_benchmark(output)
    results = json.loads(output.read_text())

    assert results["batch_size"] == 8
    assert results["rounds"] == 1
    assert results["steps"] == 1
    expected = KERAS3_VARIANTS + (TFMOT_VARIANTS if _tfmot_installed() else ())
    times = results["train_step_seconds"]
    assert tuple(times) == expected
    assert all(seconds > 0 for seconds in times.values())
    # One timed step per variant (1 round x 1 step): the median is that step.
    assert results["per_step_seconds"] == {name: [seconds] for name, seconds in times.items()}

    ratios = results["ratios"]
    for name, (variant, baseline) in QUOTIENTS.items():
        if variant in times:
            assert ratios[name] == pytest.approx(times[variant] / times[baseline])
        else:
            assert name not in ratios
    assert results["targets"] == {"masks": 1.10, "qat": 1.2, "masks_qat": 1.3, "sparsity": 1.10}
    for name in results["targets"]:
        assert results["targets_met"][name] == (ratios[name] <= results["targets"][name])
    if _tfmot_installed():
        assert results["qat_no_worse_than_tfmot"] == (ratios["qat"] <= ratios["tfmot"])
    else:
        assert results["qat_no_worse_than_tfmot"] is None
        assert "TF-MOT baseline skipped" in results["note"]

    # The printed table: one row per variant with its ms/step and a verdict.
    for variant in expected:
        assert variant in out
    assert "ms/step" in out and ("PASS" in out or "MISS" in out)
