"""The example scripts run end to end with tiny flags, as a user runs them."""

import glob
import json

import pytest

import tf_aat
from tests.scripts import ROOT, run_module, run_script

CONFIGS = ROOT / "examples" / "configs"


@pytest.mark.parametrize(
    "driver, distill",
    [("callback", False), ("runner", False), ("callback", True), ("runner", True)],
)
def test_compress_digits_end_to_end(tmp_path, driver, distill):
    export = "--export" if driver == "callback" else "--noexport"
    out = run_module(
        "examples.compress",
        f"--log_dir={tmp_path}",
        f"--driver={driver}",
        "--distill" if distill else "--nodistill",
        "--baseline_epochs=4",
        "--epochs=6",
        "--verbose=0",
        export,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stripped_params"] <= metrics["baseline_params"]
    assert (tmp_path / "summary.md").exists()
    assert (tmp_path / "compressed_stripped.keras").exists()
    assert metrics["compression_rate"] > 0.0
    assert metrics["distilled"] is distill
    assert "Accuracy on the 450 test images:" in out and "FLOPs reduction:" in out
    # What a user watches: TensorBoard scalars and the plot of the search.
    assert glob.glob(str(tmp_path / "search" / "tensorboard" / "events.out.tfevents.*"))
    assert glob.glob(str(tmp_path / "search" / "*.png"))
    if driver == "callback":  # the default config is pruning + int8: exported and evaluated
        assert (tmp_path / "compressed_int8.tflite").exists()
        assert 0.0 <= metrics["tflite_accuracy"] <= 1.0
        assert metrics["tflite_bytes"] < metrics["float_tflite_bytes"]


def test_search_can_validate_on_held_out_training_images(tmp_path):
    out = run_module(
        "examples.compress",
        f"--log_dir={tmp_path}",
        "--validation_images=300",
        "--baseline_epochs=3",
        "--epochs=3",
        "--verbose=0",
        "--export",
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The baseline and the search never saw the 450 test images: 1,347 - 300 train.
    assert metrics["train_images"] == 1047 == metrics["baseline_recipe"]["train_images"]
    assert metrics["validation_images"] == 300
    assert metrics["validation"] == "held-out training images"
    test = metrics["test"]
    for key in ("baseline_accuracy", "compressed_accuracy", "tflite_accuracy"):
        assert 0.5 < test[key] <= 1.0  # digits: far above the 0.1 of chance
    assert "Accuracy on the 300 held-out training images:" in out
    assert "Accuracy on the 450 test images, unseen by the search:" in out

    result = run_script(
        "examples.compress",
        f"--log_dir={tmp_path / 'bad'}",
        "--validation_images=5000",
        timeout=300,
    )
    assert result.returncode != 0
    assert "--validation_images must be between 1 and 1346" in result.stderr
    assert "Received: 5000" in result.stderr
    assert not (tmp_path / "bad" / "baseline.keras").exists()


@pytest.mark.parametrize("config", ["digits_pruning_adaptive.json", "digits_early_exit_int8.json"])
def test_shipped_configs_run(tmp_path, config):
    run_module(
        "examples.compress",
        f"--log_dir={tmp_path}",
        f"--config={CONFIGS / config}",
        "--baseline_epochs=2",
        "--epochs=3",
        "--verbose=0",
        "--noexport",
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["stripped_params"] > 0


def test_bad_config_fails_before_training(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"compression": {"algorithm": "filter_pruning", "params": {"pruning_taget": 0.3}}}'
    )
    result = run_script(
        "examples.compress", f"--config={bad}", f"--log_dir={tmp_path}", timeout=300
    )
    assert result.returncode != 0
    assert "Did you mean `pruning_target`" in result.stderr
    assert not (tmp_path / "baseline.keras").exists()


def test_every_shipped_config_is_valid():
    paths = glob.glob(str(CONFIGS / "*.json"))
    assert len(paths) >= 5
    for path in paths:
        config = tf_aat.CompressionConfig.from_json(path)
        # The search configs (the main job's) hold a search section; the NNCF-style
        # sparsity samples train with their schedule only, as NNCF's did.
        if "adaptive" in path or "early_exit" in path:
            assert config.accuracy_aware_training is not None, path


def test_unknown_dataset_and_missing_file_give_clear_errors():
    from examples import data

    with pytest.raises(ValueError, match=r"Unknown dataset.*Received: --dataset='mnist'"):
        data.load("mnist")
    with pytest.raises(FileNotFoundError, match=r"Received: --cifar10_path='/nope.npz'"):
        data.load("cifar10", cifar10_path="/nope.npz")


def test_compress_resnet20_on_a_cifar10_archive(tmp_path, cifar10_archive):
    """The CIFAR-10 recipe of the README (SGD, augmentation, weight decay), tiny."""
    out = run_module(
        "examples.compress",
        f"--log_dir={tmp_path}",
        "--dataset=cifar10",
        f"--cifar10_path={cifar10_archive}",
        "--model=resnet20",
        f"--config={CONFIGS / 'cifar10_resnet20_pruning_short.json'}",
        "--optimizer=sgd",
        "--learning_rate=0.1",
        "--finetune_learning_rate=0.01",
        "--weight_decay=5e-4",
        "--augment",
        "--baseline_epochs=1",
        "--epochs=2",
        "--verbose=0",
        "--noexport",
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "resnet20" and metrics["dataset"] == "cifar10"
    # Two epochs of the initial phase: the schedule reached the config's pruning_target.
    search = json.loads((tmp_path / "search" / "accuracy_aware_result.json").read_text())
    assert [row["rate"] for row in search["history"]] == pytest.approx([0.05, 0.1])
    # The job returns the highest rate that met the budget (on 64 test images of a
    # one-epoch model, either may miss it by one image).
    passed = [row["rate"] for row in search["history"] if row["passed"]]
    if passed:
        assert metrics["compression_rate"] == pytest.approx(max(passed))
    else:
        assert not metrics["criterion_met"]
    assert metrics["stripped_params"] < metrics["baseline_params"]
    assert "Compression rate:" in out
