"""Tiny models for quantization tests: plain, residual, depthwise-separable and SeparableConv CNNs."""

import keras
import numpy as np


def plain_cnn(input_shape=(16, 16, 3), classes=10):
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="plain_cnn")


def residual_net(input_shape=(16, 16, 3), classes=10):
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for block in range(2):
        y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"b{block}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"b{block}_bn1")(y)
        y = keras.layers.ReLU(name=f"b{block}_relu1")(y)
        y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"b{block}_conv2")(y)
        y = keras.layers.BatchNormalization(name=f"b{block}_bn2")(y)
        x = keras.layers.Add(name=f"b{block}_add")([x, y])
        x = keras.layers.ReLU(name=f"b{block}_relu2")(x)
    x = keras.layers.AveragePooling2D(2, name="avg_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="residual_net")


def depthwise_separable_net(input_shape=(16, 16, 3), classes=10):
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu6")(x)
    for block, filters in enumerate((16, 16)):
        x = keras.layers.DepthwiseConv2D(3, padding="same", name=f"dw{block}")(x)
        x = keras.layers.BatchNormalization(name=f"dw{block}_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"dw{block}_relu6")(x)
        x = keras.layers.Conv2D(filters, 1, name=f"pw{block}")(x)
        x = keras.layers.BatchNormalization(name=f"pw{block}_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"pw{block}_relu6")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.1, name="dropout")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="depthwise_separable_net")


def separable_cnn(input_shape=(16, 16, 3), classes=10):
    """Keras SeparableConv2D layers: with BatchNormalization, a fused ReLU, a multiplier."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = keras.layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep0")(x)
    x = keras.layers.BatchNormalization(name="sep0_bn")(x)
    x = keras.layers.ReLU(name="sep0_relu")(x)
    x = keras.layers.SeparableConv2D(
        16, 3, strides=2, padding="same", depth_multiplier=2, activation="relu", name="sep1"
    )(x)
    x = keras.layers.SeparableConv2D(24, 3, padding="same", name="sep2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="separable_cnn")


def conv1d_net(input_shape=(32, 4), classes=5):
    """1D convolutions (time series, audio): causal and dilated, with BN, depthwise, separable."""
    inputs = keras.Input(input_shape, name="series")
    x = keras.layers.Conv1D(8, 3, padding="causal", dilation_rate=2, use_bias=False, name="causal")(
        inputs
    )
    x = keras.layers.BatchNormalization(name="causal_bn")(x)
    x = keras.layers.ReLU(name="causal_relu")(x)
    x = keras.layers.DepthwiseConv1D(3, padding="same", activation="relu", name="dw")(x)
    x = keras.layers.SeparableConv1D(
        16, 3, strides=2, padding="same", depth_multiplier=2, activation="relu", name="sep"
    )(x)
    x = keras.layers.Conv1D(16, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conv1d_net")


def dilated_net(input_shape=(16, 16, 3), classes=10):
    """Dilated (atrous) 2D convolutions, as in segmentation backbones."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, use_bias=False, name="atrous")(
        inputs
    )
    x = keras.layers.BatchNormalization(name="atrous_bn")(x)
    x = keras.layers.ReLU(name="atrous_relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=3, name="atrous_dw")(x)
    x = keras.layers.BatchNormalization(name="atrous_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name="atrous_dw_relu6")(x)
    x = keras.layers.SeparableConv2D(16, 3, dilation_rate=2, activation="relu", name="atrous_sep")(
        x
    )
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="dilated_net")


MODELS = {
    "plain": plain_cnn,
    "residual": residual_net,
    "depthwise": depthwise_separable_net,
    "separable": separable_cnn,
}


def randomize_batch_norm(model, seed=0):
    """Non-trivial BatchNormalization statistics, so folding them is really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n) * rng.choice([-1.0, 1.0], n, p=[0.2, 0.8]))
            layer.beta.assign(rng.normal(0.0, 0.2, n))
            layer.moving_mean.assign(rng.normal(0.0, 0.2, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))


def images(n, shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *shape)).astype("float32")


def labels(n, classes=10, seed=0):
    return np.random.default_rng(seed + 1).integers(0, classes, n)


def pruned_int8_config(pruning_init=0.3, **quantization):
    """Filter pruning (first conv included) + int8 QAT without BN adaptation, the
    config the strip-exactness tests compress with; `quantization` adds keys to its
    quantization section."""
    return {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": pruning_init,
                "params": {"prune_first_conv": True},
            },
            {
                "algorithm": "quantization",
                "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
                **quantization,
            },
        ]
    }
