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
        log_dir=str(tmp_path), driver=driver, baseline_epochs=4, epochs=6,
        verbose=0, export=False,
    ):
        compress.main([])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stripped_params"] <= metrics["baseline_params"]
    assert (tmp_path / "summary.md").exists()
    assert (tmp_path / "compressed_stripped.keras").exists()
    assert metrics["compression_rate"] > 0.0


def test_unknown_dataset_and_missing_file_give_clear_errors():
    from examples import data

    with pytest.raises(ValueError, match=r"Unknown dataset.*Received: --dataset='mnist'"):
        data.load("mnist")
    with pytest.raises(FileNotFoundError, match=r"Received: --cifar10_path='/nope.npz'"):
        data.load("cifar10", cifar10_path="/nope.npz")
