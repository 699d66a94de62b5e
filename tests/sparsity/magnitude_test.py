"""Magnitude sparsity: exact levels, masks as variables, statistics, strip and save."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_aat
from tests.sparsity.helpers import kernels, make_model, separable_model, zero_fraction


def _config(**params):
    init = params.pop("sparsity_init", 0.0)
    section = {"algorithm": "magnitude_sparsity", "sparsity_init": init, "params": params}
    scopes = params.pop("ignored_scopes", None)
    if scopes:
        section["ignored_scopes"] = scopes
    return {"compression": section}


@pytest.mark.parametrize("level", [0.0, 0.37, 0.5, 0.9])
def test_local_mode_gives_every_kernel_the_level(level):
    keras.utils.set_random_seed(0)
    ctrl, _ = tf_aat.create_compressed_model(
        separable_model(), _config(sparsity_level_setting_mode="local")
    )
    ctrl.compression_rate = level
    found = kernels(ctrl)
    assert set(found) == {
        ("conv", "kernel"),
        ("depthwise", "kernel"),
        ("separable", "depthwise_kernel"),
        ("separable", "pointwise_kernel"),
        ("dense", "kernel"),
    }
    for key, value in found.items():
        assert np.sum(value == 0) == round(level * value.size), key


@pytest.mark.parametrize("importance", ["normed_abs", "abs"])
def test_global_mode_gives_the_level_overall_and_ranks_by_importance(importance):
    keras.utils.set_random_seed(1)
    ctrl, _ = tf_aat.create_compressed_model(make_model(), _config(weight_importance=importance))
    ctrl.compression_rate = 0.6
    found = kernels(ctrl)
    total = sum(v.size for v in found.values())
    assert sum(int(np.sum(v == 0)) for v in found.values()) == round(0.6 * total)
    per_layer = {k: float(np.mean(v == 0)) for k, v in found.items()}
    assert len(set(per_layer.values())) > 1  # one threshold, different levels per layer
    # Every kept weight is at least as important as every zeroed one.
    kept, zeroed = [], []
    for (layer, name), value in found.items():
        raw = ctrl.model.get_layer(layer).layer.kernel.numpy()
        imp = np.abs(raw) / (np.linalg.norm(raw) if importance == "normed_abs" else 1.0)
        kept.append(imp[value != 0])
        zeroed.append(imp[value == 0])
    assert np.max(np.concatenate(zeroed)) <= np.min(np.concatenate(kept))


def test_bn_and_biases_are_untouched_and_scopes_select_layers():
    keras.utils.set_random_seed(0)
    ctrl, compressed = tf_aat.create_compressed_model(
        separable_model(), _config(sparsity_init=0.5, ignored_scopes=["dense", "{re}sep.*"])
    )
    assert {w.name for w, _, _ in ctrl.entries} == {"conv", "depthwise"}
    assert not isinstance(compressed.get_layer("bn"), tf_aat.CompressionWrapper)
    conv = compressed.get_layer("conv")
    assert list(conv.weight_transforms) == ["kernel"]
    assert np.all(conv.layer.bias.numpy() == conv.compressed_weight("bias").numpy())


def test_masks_are_variables_a_new_level_reaches_the_traced_step():
    keras.utils.set_random_seed(0)
    ctrl, compressed = tf_aat.create_compressed_model(make_model(), _config(sparsity_init=0.2))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    step = tf.function(lambda v: compressed(v, training=False))
    first = step(x).numpy()
    ctrl.compression_rate = 0.8
    second = step(x).numpy()
    np.testing.assert_allclose(second, compressed(x).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(first, second)
    assert len(step._list_all_concrete_functions()) == 1  # no retrace
    conv = compressed.get_layer("conv2")
    mask = conv.weight_transforms["kernel"][0].mask
    assert isinstance(mask, keras.Variable) and not mask.trainable


def test_statistics_report_levels_and_nonzero_counts():
    keras.utils.set_random_seed(0)
    ctrl, _ = tf_aat.create_compressed_model(make_model(), _config(sparsity_init=0.4))
    stats = ctrl.statistics()
    values = stats.to_dict()
    assert values["algorithm"] == "magnitude_sparsity"
    assert values["sparsity_level"] == pytest.approx(0.4, abs=1e-3)
    assert values["parameters"] == 144 + 4608 + 320
    assert values["nonzero_parameters"] == sum(r["nonzero_parameters"] for r in values["layers"])
    assert [r["layer"] for r in values["layers"]] == ["conv1", "conv2", "classifier"]
    text = str(stats)
    assert "conv2" in text and "Non-zero" in text and "0.400" in text


def test_state_round_trip_keeps_masks_and_level():
    keras.utils.set_random_seed(0)
    ctrl, compressed = tf_aat.create_compressed_model(make_model(), _config(sparsity_init=0.3))
    ctrl.compression_rate = 0.45
    state = ctrl.get_state()
    weights = compressed.get_weights()
    other, compressed2 = tf_aat.create_compressed_model(make_model(), _config(sparsity_init=0.1))
    compressed2.set_weights(weights)
    other.load_state(state)
    assert other.compression_rate == 0.45
    assert zero_fraction(kernels(other).values()) == pytest.approx(0.45, abs=1e-3)


def test_strip_bakes_zeros_into_plain_layers_and_both_models_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    ctrl, compressed = tf_aat.create_compressed_model(separable_model(), _config(sparsity_init=0.7))
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    compressed.save(tmp_path / "compressed.keras")
    loaded = keras.saving.load_model(tmp_path / "compressed.keras")
    np.testing.assert_allclose(loaded(x), compressed(x), rtol=1e-5, atol=1e-6)
    stripped = ctrl.strip_model(compressed)
    assert not any(isinstance(layer, tf_aat.CompressionWrapper) for layer in stripped.layers)
    np.testing.assert_allclose(stripped(x), compressed(x), rtol=1e-5, atol=1e-6)
    plain = [
        stripped.get_layer("conv").kernel,
        stripped.get_layer("depthwise").kernel,
        stripped.get_layer("separable").depthwise_kernel,
        stripped.get_layer("separable").pointwise_kernel,
        stripped.get_layer("dense").kernel,
    ]
    assert zero_fraction(v.numpy() for v in plain) == pytest.approx(0.7, abs=1e-3)
    stripped.save(tmp_path / "stripped.keras")
    reloaded = keras.saving.load_model(tmp_path / "stripped.keras")
    np.testing.assert_allclose(reloaded(x), stripped(x), rtol=1e-6, atol=1e-6)
    # A loaded compressed model strips the same way (everything is read from it).
    np.testing.assert_allclose(tf_aat.strip_model(loaded)(x), stripped(x), rtol=1e-5, atol=1e-6)
