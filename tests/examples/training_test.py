"""The examples' baseline cache: trained once, reused, and a changed recipe is flagged."""

import json

import keras
import numpy as np

from examples import training


def _tiny():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)], name="tiny")


def test_baseline_is_trained_once_and_a_different_recipe_warns(tmp_path, capsys):
    path = str(tmp_path / "baseline.keras")
    data = (np.ones((16, 4), "float32"), np.arange(16) % 10)
    kwargs = dict(epochs=1, batch_size=8, optimizer="sgd", learning_rate=0.1, verbose=0)
    model = training.load_or_train(path, _tiny, data, data, **kwargs)
    recipe = json.loads((tmp_path / "baseline.keras.json").read_text())
    assert recipe["model"] == "tiny" and recipe["epochs"] == 1 and recipe["seconds"] > 0

    again = training.load_or_train(path, _tiny, data, data, **kwargs)
    out = capsys.readouterr().out
    assert "Loading the cached baseline" in out and "WARNING" not in out
    np.testing.assert_array_equal(again.get_weights()[0], model.get_weights()[0])

    training.load_or_train(path, _tiny, data, data, **{**kwargs, "epochs": 5})
    out = capsys.readouterr().out
    assert "WARNING: the cached baseline" in out and "'epochs': (1, 5)" in out
