"""Tiny seeded models shared by the tests."""

import keras
import numpy as np


def images(n=8, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, channels)).astype("float32")


def randomize_batchnorm(model, seed=0):
    """Gives BN layers non-trivial statistics so that equivalence tests mean something."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.BatchNormalization):
            for weight in inner.weights:
                shape = weight.shape
                if weight.name == "moving_variance":
                    weight.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
                else:
                    weight.assign(rng.normal(0.0, 0.5, shape).astype("float32"))
    return model


def sequential_cnn(size=16, classes=10):
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(8, 3, padding="same", name="conv1"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, padding="same", name="conv3"),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, name="logits"),
        ],
        name="sequential_cnn",
    )


def residual_net(size=16, classes=10):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for block in range(2):
        y = keras.layers.Conv2D(8, 3, padding="same", name=f"block{block}_a")(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(8, 3, padding="same", name=f"block{block}_b")(y)
        y = keras.layers.BatchNormalization()(y)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    y = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="down_a")(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(16, 3, padding="same", name="down_b")(y)
    shortcut = keras.layers.Conv2D(16, 1, strides=2, name="down_shortcut")(x)
    x = keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="residual_net")


def concat_net(size=16, classes=10):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    a = keras.layers.Conv2D(6, 1, activation="relu", name="branch_a")(x)
    b = keras.layers.Conv2D(10, 3, padding="same", name="branch_b")(x)
    b = keras.layers.BatchNormalization()(b)
    b = keras.layers.ReLU()(b)
    x = keras.layers.Concatenate()([a, b, x])
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="after_concat")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="concat_net")


def separable_net(size=16, classes=10):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw1")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(16, 1, name="pw1")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="sep1")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw2")(x)
    x = keras.layers.Conv2D(24, 1, name="pw2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="separable_net")


def nested_net(size=16, classes=10):
    backbone_in = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="bb_conv1")(backbone_in)
    x = keras.layers.Conv2D(12, 3, padding="same", name="bb_conv2")(x)
    x = keras.layers.BatchNormalization(name="bb_bn")(x)
    x = keras.layers.ReLU()(x)
    backbone = keras.Model(backbone_in, x, name="backbone")
    head_in = keras.Input((size, size, 12))
    y = keras.layers.Conv2D(10, 3, padding="same", activation="relu", name="head_conv")(head_in)
    y = keras.layers.GlobalAveragePooling2D()(y)
    head = keras.Model(head_in, y, name="head")
    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.Dense(classes, name="logits")(head(backbone(inputs)))
    return keras.Model(inputs, outputs, name="nested_net")


def sigmoid_net(size=16, classes=10):
    """Pruned channels become sigmoid(0) = 0.5 and must be folded into the next bias."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="sigmoid", name="gate")(x)
    x = keras.layers.Conv2D(10, 1, activation="relu", name="pointwise")(x)
    x = keras.layers.Conv2D(6, 3, padding="valid", activation="sigmoid", name="valid")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="sigmoid_net")


def pruning_config(rate=0.5, **params):
    params.setdefault("prune_first_conv", True)
    params.setdefault("prune_downsample_convs", True)
    return {"compression": {"algorithm": "filter_pruning", "pruning_init": rate, "params": params}}
