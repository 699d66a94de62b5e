"""Layers holding functions Keras cannot deserialize are copied with those functions."""

import logging

import keras
import numpy as np
import pytest

import tf_aat
from tests import models
from tf_aat.pruning._strip import strip_model as prune_strip


def _lambda_cnn():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = keras.layers.Lambda(lambda t: keras.ops.relu(t) * 2.0, name="double_relu")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs, name="lambda_cnn")


def _activation_cnn():
    def half_relu(t):  # local: not registered, not importable by name
        return keras.ops.relu(t) * 0.5

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation=half_relu, name="conv1")(inputs)
    x = keras.layers.Conv2D(12, 3, padding="same", activation=half_relu, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs, name="activation_cnn")


def _initializer_cnn():
    def small_normal(shape, dtype=None):
        return keras.random.normal(shape, stddev=0.1, dtype=dtype, seed=1)

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(
        8, 3, padding="same", activation="relu", kernel_initializer=small_normal, name="conv1"
    )(inputs)
    x = keras.layers.Conv2D(
        12, 3, padding="same", activation="relu", kernel_initializer=small_normal, name="conv2"
    )(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits", kernel_initializer=small_normal)(x)
    return keras.Model(inputs, outputs, name="initializer_cnn")


def _variable_ids(model):
    return {id(v) for v in model.variables}


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


@pytest.mark.parametrize(
    "build, held",
    [
        (_lambda_cnn, "function=<lambda>"),
        (_activation_cnn, "activation=half_relu"),
        (_initializer_cnn, "kernel_initializer=small_normal"),
    ],
)
def test_unregistered_functions_are_copied_trained_and_stripped(build, held, caplog):
    model = build()
    x = models.images(n=16)
    y = np.random.default_rng(0).integers(0, 4, 16)
    expected = keras.ops.convert_to_numpy(model(x))
    original = _weights(model)
    with caplog.at_level(logging.WARNING, "tf_aat"):
        ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.0))
    assert held in caplog.text
    assert "register_keras_serializable" in caplog.text
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(compressed(x)), expected, atol=1e-5, rtol=1e-5
    )
    assert not _variable_ids(model) & _variable_ids(compressed)

    compressed.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = _weights(compressed)
    compressed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = _weights(compressed)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    assert all(np.isfinite(w).all() for w in after)
    for kept, now in zip(original, _weights(model)):
        np.testing.assert_array_equal(now, kept)  # the original is not modified

    ctrl.compression_rate = 0.5
    stripped = prune_strip(compressed)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x, training=False)),
        keras.ops.convert_to_numpy(compressed(x, training=False)),
        atol=1e-4,
        rtol=1e-4,
    )
    for layer in stripped._flatten_layers(include_self=False, recursive=True):
        assert not isinstance(layer, tf_aat.CompressionWrapper), layer.name
    assert not _variable_ids(stripped) & _variable_ids(compressed)


def test_pruning_still_removes_filters_around_a_lambda():
    model = _lambda_cnn()
    _, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.5))
    stripped = prune_strip(compressed)
    assert stripped.count_params() < model.count_params()


def test_controller_strip_keeps_unregistered_functions():
    model = _lambda_cnn()
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.5))
    x = models.images()
    stripped = ctrl.strip_model(compressed)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x, training=False)),
        keras.ops.convert_to_numpy(compressed(x, training=False)),
        atol=1e-4,
        rtol=1e-4,
    )


class _Apply(keras.layers.Layer):
    """Holds a function its `get_config` leaves out: no config round trip can rebuild it."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, inputs):
        return self.fn(inputs)


def test_layer_that_cannot_be_copied_is_named_with_the_fix():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = _Apply(keras.ops.relu, name="apply_relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    with pytest.raises(TypeError, match=r"'apply_relu' \(_Apply\)") as caught:
        tf_aat.create_compressed_model(model, models.pruning_config(0.0))
    message = str(caught.value)
    assert "register_keras_serializable" in message
    assert "Received: apply_relu=_Apply" in message
    assert "get_config()" in message


def test_registered_functions_still_take_the_config_round_trip(caplog):
    model = models.sequential_cnn()
    with caplog.at_level(logging.WARNING, "tf_aat"):
        tf_aat.create_compressed_model(model, models.pruning_config(0.0))
    assert "cannot deserialize" not in caplog.text
