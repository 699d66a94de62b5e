"""`examples/compress.py --strategy`: the main job on one device, mirrored over two
logical CPU devices, and as two MultiWorkerMirroredStrategy workers on 127.0.0.1."""

import json
import os

import pytest

from tests.distribute.cluster import run_workers
from tests.scripts import ROOT, run_module, run_script


def _short_config(tmp_path):
    """The default digits config with a 3-epoch search (the runner ignores --epochs)."""
    with open(ROOT / "examples" / "configs" / "digits_pruning_int8_adaptive.json") as file:
        config = json.load(file)
    section = config["compression"][0]["accuracy_aware_training"]
    section.update(initial_training_phase_epochs=1, patience_epochs=1, maximal_total_epochs=3)
    path = tmp_path / "short.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices(tmp_path):
    out = run_module(
        "examples.compress",
        f"--log_dir={tmp_path}",
        f"--config={_short_config(tmp_path)}",
        "--strategy=mirrored",
        "--cpu_devices=2",
        "--baseline_epochs=2",
        "--epochs=3",
        "--verbose=0",
        "--noexport",
    )
    assert "Training with MirroredStrategy on 2 replicas" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["compression_rate"] > 0.0
    assert (tmp_path / "compressed_stripped.keras").exists()


def test_distillation_is_refused_under_a_strategy(tmp_path):
    result = run_script(
        "examples.compress", f"--log_dir={tmp_path}", "--strategy=mirrored", "--distill"
    )
    assert result.returncode != 0 and "--distill runs on one device only" in result.stderr
    assert not os.path.exists(tmp_path / "metrics.json")


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["callback", "runner"])
def test_multi_worker_on_two_local_workers(tmp_path, driver):
    ran = run_workers(
        ["-m", "examples.compress"],
        [
            [
                f"--log_dir={tmp_path}",
                f"--config={_short_config(tmp_path)}",
                "--strategy=multi_worker",
                f"--driver={driver}",
                "--baseline_epochs=2",
                "--verbose=0",
                "--noexport",
            ]
        ]
        * 2,
        timeout=300,
    )
    for task, (code, output) in enumerate(ran):
        assert code == 0, f"worker {task}:\n{output[-4000:]}"
    chief, worker = (output for _, output in ran)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert f"Compression rate: {metrics['compression_rate']:.4f}" in chief
    assert "the chief writes the report" in worker
    assert f"at rate {metrics['compression_rate']}" in worker  # the same rate on both
