"""Image classifiers used by the examples and benchmarks: small CNN, ResNet-20, MobileNetV2-style."""

import keras


def small_cnn(input_shape=(8, 8, 1), classes=10, width=16):
    """Three conv blocks and a dense head; the quick offline default for digits."""
    inputs = keras.Input(input_shape)
    x = inputs
    for index, filters in enumerate((width, 2 * width, 2 * width)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{index}")(x)
        # Few steps per epoch on digits: faster-moving BN statistics.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
        if index < 2:
            x = keras.layers.MaxPooling2D(name=f"pool{index}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def resnet20(input_shape=(32, 32, 3), classes=10, depth=20, keras_module=None):
    """ResNet-20 for CIFAR-10 (He et al. 2016, 3 stages x 3 basic blocks, 16/32/64 filters).

    `keras_module` is `keras` (default) or `tf_keras`, so benchmarks can train
    exactly the same architecture under Keras 2 (e.g. for TF-MOT).
    """
    k = keras_module or keras
    layers = k.layers
    blocks = (depth - 2) // 6

    def conv_bn(x, filters, kernel, strides, name, activation=True):
        x = layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_conv",
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x) if activation else x

    inputs = k.Input(input_shape)
    x = conv_bn(inputs, 16, 3, 1, "stem")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            name = f"stage{stage}_block{block}"
            strides = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(x, filters, 3, strides, f"{name}_a")
            y = conv_bn(y, filters, 3, 1, f"{name}_b", activation=False)
            if strides != 1 or x.shape[-1] != filters:
                x = conv_bn(x, filters, 1, strides, f"{name}_shortcut", activation=False)
            x = layers.Add(name=f"{name}_add")([x, y])
            x = layers.ReLU(name=f"{name}_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, name="logits")(x)
    return k.Model(inputs, outputs, name=f"resnet{depth}")


def mobilenet_v2_small(input_shape=(32, 32, 3), classes=10, alpha=0.5):
    """A narrow MobileNetV2-style net: inverted residual blocks with ReLU6."""

    def width(c):
        return max(8, int(c * alpha + 4) // 8 * 8)

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width(32), 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1)]
    index = 0
    for expansion, channels, repeats, first_stride in settings:
        for repeat in range(repeats):
            strides = first_stride if repeat == 0 else 1
            name = f"block{index}"
            shortcut = x
            y = x
            if expansion != 1:
                y = keras.layers.Conv2D(
                    x.shape[-1] * expansion, 1, use_bias=False, name=f"{name}_expand"
                )(y)
                y = keras.layers.BatchNormalization(name=f"{name}_expand_bn")(y)
                y = keras.layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
            y = keras.layers.DepthwiseConv2D(
                3, strides=strides, padding="same", use_bias=False, name=f"{name}_depthwise"
            )(y)
            y = keras.layers.BatchNormalization(name=f"{name}_depthwise_bn")(y)
            y = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
            y = keras.layers.Conv2D(width(channels), 1, use_bias=False, name=f"{name}_project")(y)
            y = keras.layers.BatchNormalization(name=f"{name}_project_bn")(y)
            if strides == 1 and shortcut.shape[-1] == y.shape[-1]:
                y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
            x = y
            index += 1
    x = keras.layers.Conv2D(width(320), 1, use_bias=False, name="head_conv")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.ReLU(6.0, name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2_small")


MODELS = {"small_cnn": small_cnn, "resnet20": resnet20, "mobilenet_v2": mobilenet_v2_small}
