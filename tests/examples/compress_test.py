"""The main example runs end to end with tiny flags, through both drivers."""

import json

import pytest
from absl import flags
from absl.testing import flagsaver

from examples import compress


@pytest.fixture(autouse=True)
def _parse_flags():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["compress"])


@pytest.mark.parametrize("driver", ["callback", "runner"])
def test_compress_digits_end_to_end(tmp_path, driver):
    with flagsaver.flagsaver(
        log_dir=str(tmp_path),
        driver=driver,
        baseline_epochs=4,
        epochs=6,
        verbose=0,
        export=(driver == "callback"),
    ):
        compress.main([])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stripped_params"] <= metrics["baseline_params"]
    assert (tmp_path / "summary.md").exists()
    assert (tmp_path / "compressed_stripped.keras").exists()
    assert metrics["compression_rate"] > 0.0
    if driver == "callback":  # the default config is pruning + int8: exported and evaluated
        assert (tmp_path / "compressed_int8.tflite").exists()
        assert 0.0 <= metrics["tflite_accuracy"] <= 1.0
        assert metrics["tflite_bytes"] < metrics["float_tflite_bytes"]


@pytest.mark.parametrize("config", ["digits_pruning_adaptive.json", "digits_early_exit_int8.json"])
def test_shipped_configs_run(tmp_path, config):
    import os

    path = os.path.join(os.path.dirname(compress.__file__), "configs", config)
    with flagsaver.flagsaver(
        log_dir=str(tmp_path), config=path, baseline_epochs=2, epochs=4, verbose=0, export=False
    ):
        compress.main([])
    assert json.loads((tmp_path / "metrics.json").read_text())["stripped_params"] > 0


def test_every_shipped_config_is_valid():
    import glob
    import os

    import tf_aat

    paths = glob.glob(os.path.join(os.path.dirname(compress.__file__), "configs", "*.json"))
    assert len(paths) >= 5
    for path in paths:
        assert tf_aat.CompressionConfig.from_json(path).accuracy_aware_training is not None


def test_unknown_dataset_and_missing_file_give_clear_errors():
    from examples import data

    with pytest.raises(ValueError, match=r"Unknown dataset.*Received: --dataset='mnist'"):
        data.load("mnist")
    with pytest.raises(FileNotFoundError, match=r"Received: --cifar10_path='/nope.npz'"):
        data.load("cifar10", cifar10_path="/nope.npz")
