"""Keras 3 graph idioms: operation nodes (`x + y`, `keras.ops.*`) and user layer rules."""

import keras
import numpy as np
import pytest

import tf_aat
from tests import models


def _check_exact_strip(model, rate=0.5, size=16):
    """Prunes at `rate`, strips, and checks the stripped model computes the masked one."""
    models.randomize_batchnorm(model)
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(rate))
    x = models.images(size=size)
    stripped = ctrl.strip_model(compressed)
    masked_out = keras.ops.convert_to_numpy(compressed(x, training=False))
    stripped_out = keras.ops.convert_to_numpy(stripped(x, training=False))
    np.testing.assert_allclose(stripped_out, masked_out, atol=1e-4, rtol=1e-4)
    assert stripped.count_params() < model.count_params()
    return ctrl, stripped


def _conv(filters, name, **kwargs):
    return keras.layers.Conv2D(filters, 3, padding="same", name=name, **kwargs)


def _blocked(ctrl):
    stats = ctrl.statistics().to_dict()
    return {tuple(g["layers"]): " ".join(g["reasons"]) for g in stats["not_prunable_groups"]}


def test_residual_written_as_x_plus_y_shares_one_mask():
    inputs = keras.Input((16, 16, 3))
    stem = _conv(8, "stem", activation="relu")(inputs)
    branch = _conv(8, "branch")(stem)
    x = keras.layers.ReLU()(stem + branch)
    x = _conv(8, "head")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    ctrl, stripped = _check_exact_strip(keras.Model(inputs, outputs))
    groups = {tuple(sorted(g.names)) for g in ctrl.groups}
    assert ("branch", "stem") in groups
    assert stripped.get_layer("stem").filters == stripped.get_layer("branch").filters == 4


def test_keras_ops_concatenate_concatenates_masks():
    inputs = keras.Input((16, 16, 3))
    a = _conv(8, "a", activation="relu")(inputs)
    b = _conv(6, "b", activation="relu")(inputs)
    x = keras.ops.concatenate([a, b], axis=-1)
    x = _conv(8, "c", activation="relu")(x)
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    _, stripped = _check_exact_strip(keras.Model(inputs, outputs))
    assert stripped.get_layer("c").kernel.shape[-2] == 4 + 3


def test_squeeze_excite_gate_with_keras_ops_couples_the_gate_with_its_input():
    inputs = keras.Input((16, 16, 3))
    x = _conv(8, "features", activation="relu")(inputs)
    squeezed = keras.ops.mean(x, axis=[1, 2], keepdims=True)
    squeezed = keras.layers.Conv2D(4, 1, activation="relu", name="squeeze")(squeezed)
    gate = keras.layers.Conv2D(8, 1, name="excite")(squeezed)
    x = keras.ops.multiply(x, keras.ops.sigmoid(gate))
    x = _conv(8, "after")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    ctrl, stripped = _check_exact_strip(keras.Model(inputs, outputs))
    groups = {tuple(sorted(g.names)) for g in ctrl.groups}
    # The gate's channels are the features' channels: one mask for both.
    assert ("excite", "features") in groups
    assert ("squeeze",) in groups
    assert stripped.get_layer("features").filters == stripped.get_layer("excite").filters == 4


def test_keras_ops_mean_pooling_feeds_the_classifier():
    inputs = keras.Input((16, 16, 3))
    x = _conv(8, "a", activation="relu")(inputs)
    x = _conv(8, "b", activation="relu")(x)
    pooled = keras.ops.mean(x, axis=[1, 2])
    outputs = keras.layers.Dense(4, name="logits")(pooled)
    _, stripped = _check_exact_strip(keras.Model(inputs, outputs))
    assert stripped.get_layer("logits").kernel.shape[0] == 4


def test_hard_sigmoid_written_with_constants_keeps_pruned_values_exact():
    # MobileNetV3's hard swish: x * relu6(x + 3) / 6, with Python constants.
    inputs = keras.Input((16, 16, 3))
    x = _conv(8, "a")(inputs)
    x = x * keras.layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    x = _conv(8, "b")(x)
    x = keras.ops.relu(x + 1.0)  # pruned channels become 1: folded into the next bias
    x = keras.layers.Conv2D(8, 1, name="c")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    ctrl, _ = _check_exact_strip(keras.Model(inputs, outputs))
    assert {"a", "b", "c"} <= {n for g in ctrl.groups for n in g.names}


def test_channel_shuffle_by_reshape_and_transpose_is_blocked_with_a_reason():
    inputs = keras.Input((8, 8, 3))
    x = _conv(8, "before_shuffle", activation="relu")(inputs)
    x = keras.ops.reshape(x, (-1, 8, 8, 2, 4))
    x = keras.ops.transpose(x, (0, 1, 2, 4, 3))
    x = keras.ops.reshape(x, (-1, 8, 8, 8))
    x = _conv(8, "after_shuffle", activation="relu")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    ctrl, stripped = _check_exact_strip(model, size=8)
    reasons = _blocked(ctrl)[("before_shuffle",)]
    assert "keras.ops Reshape" in reasons and "reshapes the channel axis" in reasons
    assert stripped.get_layer("before_shuffle").filters == 8
    assert stripped.get_layer("after_shuffle").filters == 4


def test_broadcast_add_of_one_channel_blocks_instead_of_pruning_wrongly():
    inputs = keras.Input((16, 16, 3))
    x = _conv(8, "features")(inputs)
    attention = _conv(1, "attention")(inputs)
    x = keras.layers.ReLU()(x + attention)  # a pruned channel would become `attention`
    x = _conv(8, "head")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    ctrl, _ = _check_exact_strip(keras.Model(inputs, outputs))
    assert "varies" in _blocked(ctrl)[("features",)]


@keras.saving.register_keras_serializable(package="tf_aat_tests")
class PointwiseProjection(keras.layers.Layer):
    """A user's layer: a 1x1 projection written by hand."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return keras.ops.relu(keras.ops.matmul(inputs, self.kernel) + self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tf_aat_tests")
class ChannelScale(keras.layers.Layer):
    """A user's per-channel scale (zero stays zero)."""

    def build(self, input_shape):
        # Unnamed, as in many user layers: Keras names it "variable_<n>".
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.scale


def _custom_model():
    inputs = keras.Input((16, 16, 3))
    x = _conv(8, "stem", activation="relu")(inputs)
    x = PointwiseProjection(12, name="projection")(x)
    x = ChannelScale(name="scale")(x)
    x = _conv(8, "head", activation="relu")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.get_layer("scale").scale.assign(np.linspace(0.5, 2.0, 12).astype("float32"))
    return model


def test_a_layer_without_a_rule_blocks_its_channels_with_a_reason():
    # The layers without rules keep their (unnamed) weights through strip.
    ctrl, stripped = _check_exact_strip(_custom_model())
    reasons = _blocked(ctrl)[("stem",)]
    assert "PointwiseProjection" in reasons and "register_layer_rule" in reasons
    assert stripped.get_layer("head").filters == 4


def test_a_registered_custom_layer_is_pruned_and_stripped_exactly():
    tf_aat.register_layer_rule(
        PointwiseProjection,
        tf_aat.LayerRule(
            channels="produce",
            filter_weights={"kernel": -1, "bias": 0},
            input_weights={"kernel": -2},
            score_weight="kernel",
            filters_config_key="units",
        ),
    )
    tf_aat.register_layer_rule(
        ChannelScale, tf_aat.LayerRule(channels="carry", channel_weights={"scale": 0})
    )
    try:
        ctrl, stripped = _check_exact_strip(_custom_model())
        pruned = {n for g in ctrl.groups for n in g.names}
        assert {"stem", "projection"} <= pruned
        assert stripped.get_layer("projection").units == 6
        assert stripped.get_layer("scale").scale.shape == (6,)
        assert stripped.get_layer("projection").kernel.shape == (4, 6)
    finally:
        from tf_aat import _layer_rules

        _layer_rules._LAYER_RULES.pop(PointwiseProjection, None)
        _layer_rules._LAYER_RULES.pop(ChannelScale, None)


def test_layer_rules_are_checked_when_registered():
    with pytest.raises(ValueError, match="channels"):
        tf_aat.LayerRule(channels="produces")
    with pytest.raises(ValueError, match="filter_weights"):
        tf_aat.LayerRule(channels="produce")
    with pytest.raises(TypeError, match="Keras layer class"):
        tf_aat.register_layer_rule("Conv2D", tf_aat.LayerRule(channels="carry"))


def test_mobilenet_v3_small_with_its_default_head_prunes_and_strips_exactly():
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=10)
    config = models.pruning_config(0.4)
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    stripped = ctrl.strip_model(compressed)
    masked = keras.ops.convert_to_numpy(compressed(x, training=False))
    plain = keras.ops.convert_to_numpy(stripped(x, training=False))
    assert np.linalg.norm(plain - masked) <= 1e-4 * np.linalg.norm(masked)
    assert len(ctrl.groups) > 10
    assert stripped.count_params() < 0.7 * model.count_params()


def test_batch_norm_without_gamma_after_a_pruned_conv_strips_exactly():
    # InceptionV3's conv2d_bn: Conv2D(use_bias=False) + BatchNormalization(scale=False).
    # A zero channel leaves such a BN as -moving_mean / std unless that mean is zeroed.
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="a")(inputs)
    x = keras.layers.BatchNormalization(scale=False, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = _conv(8, "b")(x)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(rng.normal(0, 1, 8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2, 8).astype("float32"))
    ctrl, stripped = _check_exact_strip(model)
    assert stripped.get_layer("a").filters == 4
    # Training keeps the pruned channels' mean at zero.
    _, compressed = ctrl, ctrl.model
    compressed.compile("sgd", "mse")
    compressed.fit(models.images(), np.zeros((8, 4)), epochs=1, verbose=0)
    keep = keras.ops.convert_to_numpy(compressed.get_layer("a").mask) > 0.5
    mean = keras.ops.convert_to_numpy(compressed.get_layer("bn").layer.moving_mean)
    assert np.all(mean[~keep] == 0.0) and np.any(mean[keep] != 0.0)
