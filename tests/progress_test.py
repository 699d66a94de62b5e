"""`create_compressed_model` shows its long steps (range initialisation, BatchNormalization
adaptation) with a Keras progress bar or a closing line with the counts, as `verbose` says."""

import sys

import keras
import numpy as np
import pytest

import tf_aat


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


CONFIG = {
    "compression": {
        "algorithm": "quantization",
        "preset": "mixed",
        "initializer": {
            "range": {"num_init_samples": 40},
            "batchnorm_adaptation": {"num_bn_adaptation_samples": 24},
        },
    }
}
DATA = np.random.default_rng(0).random((100, 8, 8, 3), dtype="float32")


def _create(verbose):
    ctrl, _ = tf_aat.create_compressed_model(_model(), CONFIG, init_data=DATA, verbose=verbose)
    return ctrl


def _closing_lines(ctrl):
    count = len(ctrl.activation_quantizers)
    return (
        f"Initialised {count} activation ranges from 40 samples.",
        "Adapted 1 BatchNormalization layer on 24 samples.",
    )


def test_verbose_1_shows_a_progress_bar_with_the_counts(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    ctrl = _create(verbose=1)
    out = capsys.readouterr().out
    ranges, batch_norm = _closing_lines(ctrl)
    assert f"Initialising {len(ctrl.activation_quantizers)} activation ranges (40 samples)" in out
    assert "Adapting 1 BatchNormalization layer (24 samples)" in out
    # Keras's bar, counting samples up to the total (batches of 32: 32, then 40).
    assert "━" in out and "32/40" in out and "40/40" in out and "24/24" in out
    lines = out.split("\n")
    assert ranges in lines and batch_norm in lines  # each on a line of its own
    assert lines.index(ranges) < lines.index(batch_norm)


def test_verbose_2_says_only_the_counts(capsys):
    ctrl = _create(verbose=2)
    out = capsys.readouterr().out
    assert out.splitlines() == list(_closing_lines(ctrl))


def test_verbose_0_is_silent_and_logs_the_counts(capsys, caplog):
    with caplog.at_level("INFO", "tf_aat"):
        ctrl = _create(verbose=0)
    assert capsys.readouterr().out == ""
    for line in _closing_lines(ctrl):
        assert line in caplog.text


def test_auto_follows_keras_interactive_logging(capsys, caplog):
    keras.config.disable_interactive_logging()
    try:
        # The absl logger's own level too: TensorFlow's SavedModel export (run by any
        # earlier test that exports) leaves it at WARNING.
        with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
            ctrl = _create(verbose="auto")
    finally:
        keras.config.enable_interactive_logging()
    assert capsys.readouterr().out == ""
    absl = [r.getMessage() for r in caplog.records if r.name == "absl"]
    for line in _closing_lines(ctrl):
        assert line in absl


def test_a_wrong_verbose_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"one of \['auto', 0, 1, 2\].*Received: verbose='yes'"):
        tf_aat.create_compressed_model(_model(), CONFIG, init_data=DATA, verbose="yes")
