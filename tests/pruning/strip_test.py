import keras
import numpy as np
import pytest

import tf_aat
from tests import models


def _conv_filters(model):
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D)):
            total += layer.filters
    return total


def _check_strip(model, rate=0.5, size=16, atol=1e-4, **params):
    models.randomize_batchnorm(model)
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(rate, **params))
    models.randomize_batchnorm(compressed, seed=1)
    x = models.images(size=size)
    stripped = ctrl.strip_model(compressed)
    masked_out = keras.ops.convert_to_numpy(compressed(x, training=False))
    stripped_out = keras.ops.convert_to_numpy(stripped(x, training=False))
    np.testing.assert_allclose(stripped_out, masked_out, atol=atol, rtol=1e-4)
    # The stripped model is made of plain Keras layers only.
    for layer in stripped._flatten_layers(include_self=False, recursive=True):
        assert not isinstance(layer, tf_aat.CompressionWrapper), layer.name
    assert _conv_filters(stripped) < _conv_filters(model)
    assert stripped.count_params() < model.count_params()
    stats = ctrl.statistics().to_dict()
    assert stats["current_flops"] < stats["full_flops"]
    return ctrl, compressed, stripped


@pytest.mark.parametrize(
    "build",
    [
        models.sequential_cnn,
        models.residual_net,
        models.concat_net,
        models.separable_net,
        models.nested_net,
        models.sigmoid_net,
    ],
)
def test_stripped_model_matches_masked_model_with_fewer_filters(build):
    _check_strip(build())


def test_sequential_model_stays_sequential():
    _, _, stripped = _check_strip(models.sequential_cnn())
    assert isinstance(stripped, keras.Sequential)


def test_nested_submodels_stay_nested_with_pruned_channels():
    _, compressed, stripped = _check_strip(models.nested_net())
    backbone = stripped.get_layer("backbone")
    assert isinstance(backbone, keras.Model)
    assert backbone.output.shape[-1] < 12  # pruned across the sub-model boundary
    assert stripped.get_layer("head").input.shape[-1] == backbone.output.shape[-1]


def test_residual_add_inputs_share_one_mask():
    ctrl, compressed, _ = _check_strip(models.residual_net())
    keep = ctrl.current_keep()
    by_name = {unit.name: keep[id(unit.layer)] for g in ctrl.groups for unit in g.units}
    # stem, block0_b and block1_b meet in the Add layers: one mask for all.
    np.testing.assert_array_equal(by_name["stem"], by_name["block0_b"])
    np.testing.assert_array_equal(by_name["stem"], by_name["block1_b"])
    np.testing.assert_array_equal(by_name["down_b"], by_name["down_shortcut"])


def test_sigmoid_constant_is_folded_into_the_next_bias():
    ctrl, compressed, stripped = _check_strip(models.sigmoid_net())
    # `gate` feeds a 1x1 conv, so its pruned channels (0.5 each) can be removed exactly.
    assert stripped.get_layer("gate").filters < 12
    # `valid` (sigmoid) feeds Flatten -> Dense, also exact.
    assert stripped.get_layer("valid").filters < 6


def test_stripped_and_compressed_models_survive_keras_save_and_load(tmp_path):
    ctrl, compressed, stripped = _check_strip(models.residual_net())
    x = models.images()
    for name, model in (("compressed", compressed), ("stripped", stripped)):
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)  # no custom_objects
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(x, training=False)),
            keras.ops.convert_to_numpy(model(x, training=False)),
            atol=1e-6,
        )
    # A loaded compressed model strips the same way: masks live in the model.
    loaded = keras.models.load_model(tmp_path / "compressed.keras")
    again = tf_aat.strip_model(loaded)
    assert again.count_params() == stripped.count_params()


@pytest.mark.parametrize(
    "name,shape",
    [("ResNet50", (64, 64, 3)), ("MobileNetV2", (32, 32, 3)), ("DenseNet121", (32, 32, 3))],
)
def test_keras_applications_strip_exactly(name, shape):
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(
        weights=None, input_shape=shape, classes=10, classifier_activation=None
    )
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.4))
    models.randomize_batchnorm(compressed)
    x = models.images(n=2, size=shape[0])
    stripped = ctrl.strip_model(compressed)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x, training=False)),
        keras.ops.convert_to_numpy(compressed(x, training=False)),
        atol=1e-3,
        rtol=1e-3,
    )
    stats = ctrl.statistics().to_dict()
    assert stats["prunable_groups"] > 10
    assert stripped.count_params() < 0.8 * model.count_params()
    assert stats["flops_reduction"] > 0.3
