"""MirroredStrategy over two logical CPU devices: a pruning + QAT digits model trained
with the accuracy-aware callback agrees across replicas and with a one-device run.

The devices can only be set before TensorFlow starts, so `mirrored_script.py` runs in
a fresh process and prints what it measured; the tests read that.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.distribute.cluster import ROOT

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("mirrored")
    process = subprocess.run(
        [sys.executable, "tests/distribute/mirrored_script.py", str(out_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_the_search_runs_on_two_replicas(measured):
    mirrored = measured["mirrored"]
    assert mirrored["num_replicas"] == 2
    assert len(mirrored["rates"]) >= 2  # the search moved the rate at least once
    assert mirrored["ctrl_rate"] == pytest.approx(mirrored["final_rate"])


def test_masks_ranges_and_statistics_agree_across_replicas(measured):
    # After every epoch's decision: pruning masks (the conv's, the BN's and the
    # consumers' input masks), activation ranges, BN moving statistics.
    spread = measured["mirrored"]["replica_spread"]
    assert any(path.endswith("/mask") for path in spread)
    assert any(path.endswith("range_max") for path in spread)
    assert any("moving_mean" in path for path in spread)
    assert spread == {path: 0.0 for path in spread}
    # An unsynchronised BatchNormalization too (each replica normalises its own half).
    plain = measured["plain_batch_norm_spread"]
    assert any("moving_variance" in path for path in plain)
    assert plain == {path: 0.0 for path in plain}


def test_sparsity_masks_agree_across_replicas(measured):
    for name, measured_sparsity in measured["sparsity"].items():
        assert measured_sparsity["rate"] == pytest.approx(0.5), name  # the schedule ran
        masks = measured_sparsity["masks"]
        assert len(masks) >= 3, name  # conv1, conv2 and the classifier's kernels
        assert masks == {path: 0.0 for path in masks}, name


def test_the_result_matches_one_device(measured):
    single, mirrored = measured["single"], measured["mirrored"]
    # Same decisions: the rates tried, the rate returned, the criterion.
    assert mirrored["rates"] == single["rates"]
    assert mirrored["final_rate"] == single["final_rate"]
    assert mirrored["criterion_met"] == single["criterion_met"]
    # Measured (TF 2.21, Keras 3.15, 2-core x86, oneDNN on): identical metrics, the
    # largest weight difference 3.9e-7 (summation order of the two halves). The bounds
    # allow 2 of the 256 validation images and 1e-4 on any weight.
    np.testing.assert_allclose(mirrored["metrics"], single["metrics"], atol=2 / 256)
    assert abs(mirrored["accuracy"] - single["accuracy"]) <= 2 / 256
    assert measured["single_weights_vs_mirrored"] < 1e-4


def test_strip_and_export_give_what_one_device_gives(measured):
    outputs = measured["stripped_outputs"]
    # The distributed model stripped outside and inside the scope, and the same
    # weights in a model built on one device: the same outputs.
    assert outputs["outside"] == outputs["reference"]
    assert outputs["inside"] == outputs["reference"]
    assert measured["stripped_inside_distributed"] == "MirroredVariable"
    assert measured["stripped_outside_distributed"] != "MirroredVariable"
    files = measured["tflite"]
    assert files["inside_equals_outside"]  # byte for byte
    reference = files["reference"]
    for name in ("outside", "inside"):
        # Only generated layer names differ from the one-device file.
        assert files[name]["size"] == reference["size"]
        assert files[name]["ops"] == reference["ops"]
        assert files[name]["outputs"] == reference["outputs"]


def test_a_model_created_outside_the_scope_is_refused_with_the_fix(measured):
    errors = measured["misuse"]
    for where, message in errors.items():
        assert message is not None, where
        assert "MirroredStrategy" in message
        assert "create_compressed_model" in message and "strategy.scope()" in message
    assert errors["compiled_inside_fit"].startswith("CompressionCallback: the model is trained")
    assert errors["accuracy_aware_callback"].startswith("AccuracyAwareCallback was created")
