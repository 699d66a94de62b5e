"""Strip changes no quantized value: the stripped QAT model is the searched one."""

import keras
import numpy as np
import pytest

import tf_aat
from tests.quantization.models import pruned_int8_config

pytestmark = pytest.mark.onednn

CONFIG = {
    "compression": [
        {
            "algorithm": "filter_pruning",
            "pruning_init": 0.5,
            "params": {"prune_first_conv": True, "filter_importance": "L2"},
        },
        {
            "algorithm": "quantization",
            "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
        },
    ]
}


def _model():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="producer")(inputs)
    x = keras.layers.BatchNormalization(name="producer_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="consumer")(x)
    x = keras.layers.BatchNormalization(name="consumer_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs)


def test_pruned_channels_that_dominate_the_consumers_ranges_do_not_move_the_int8_grid():
    keras.utils.set_random_seed(0)
    model = _model()
    rng = np.random.default_rng(0)
    producer = model.get_layer("producer")
    # The four smallest producer filters (L2) are the pruned ones...
    kernel = rng.normal(0, 1, producer.kernel.shape).astype("float32")
    kernel[..., :4] *= 0.01
    producer.kernel.assign(kernel)
    # ...and the consumer's weights that read them are 20x the others: they set
    # every per-channel weight range while they are in the kernel.
    consumer = model.get_layer("consumer")
    weights = rng.normal(0, 0.1, consumer.kernel.shape).astype("float32")
    weights[:, :, :4, :] *= 20.0
    consumer.kernel.assign(weights)
    data = rng.normal(0, 1, (32, 12, 12, 3)).astype("float32")
    ctrl, compressed = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    pruning = ctrl.children[0]
    keep = keras.ops.convert_to_numpy(compressed.get_layer("producer").mask) > 0.5
    assert not keep[:4].any() and keep[4:].all()
    compressed.compile("adam", "mse")
    compressed.fit(data, rng.normal(0, 1, (32, 4)), epochs=1, batch_size=8, verbose=0)
    stripped = pruning.strip_model(compressed)
    assert stripped.get_layer("consumer").layer.kernel.shape[-2] == 4
    searched = keras.ops.convert_to_numpy(compressed(data, training=False))
    deployed = keras.ops.convert_to_numpy(stripped(data, training=False))
    np.testing.assert_allclose(deployed, searched, rtol=1e-4, atol=1e-5)


def test_a_pruned_batch_norm_rounds_its_kept_channels_as_the_stripped_one():
    """InceptionResNetV2's conv + BatchNormalization(scale=False) + ReLU: strip
    moves the kept channels of the BN's per-channel vectors, and TensorFlow's CPU
    rsqrt differs by one float step between a vector packet and the scalar tail.
    The inputs put each channel's output within a few float steps of a rounding
    boundary of the ReLU's quantizer, where one float step is one int8 step."""
    keras.utils.set_random_seed(0)
    channels = 32
    inputs = keras.Input((1, 1, 1))
    x = keras.layers.Conv2D(channels, 1, use_bias=False, name="producer")(inputs)
    x = keras.layers.BatchNormalization(scale=False, name="producer_bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    outputs = keras.layers.Conv2D(8, 1, name="consumer")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.get_layer("producer").kernel.assign(np.ones((1, 1, 1, channels), "float32"))
    batch_norm = model.get_layer("producer_bn")
    variance = rng.uniform(0.5, 1.5, channels)
    batch_norm.moving_variance.assign(variance.astype("float32"))
    config = pruned_int8_config(quantize_inputs=False)
    calibration = rng.uniform(0.0, 2.0, (16, 1, 1, 1)).astype("float32")
    ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=calibration)
    stripped = ctrl.strip_model(compressed)
    step = 0.01  # the ReLU's int8 grid: 0, 0.01, ..., 2.55 in both models
    compressed.get_layer("relu_quantizer").set_range(0.0, 255 * step)
    stripped.get_layer("relu_quantizer").set_range(0.0, 255 * step)
    # For every channel, inputs that map to within +-24 float steps of the
    # boundaries between grid points 20..119 (the conv passes them through).
    scale = 1.0 / np.sqrt(variance + batch_norm.epsilon)
    boundaries = (np.arange(20, 120) + 0.5) * step
    offsets = 1.0 + np.arange(-24, 25) * 2.0**-23
    data = (boundaries[None, :, None] / scale[:, None, None]) * offsets[None, None, :]
    data = data.reshape(-1, 1, 1, 1).astype("float32")
    searched = keras.ops.convert_to_numpy(compressed(data, training=False))
    deployed = keras.ops.convert_to_numpy(stripped(data, training=False))
    assert stripped.get_layer("producer_bn").moving_variance.shape[0] < channels
    np.testing.assert_array_equal(deployed, searched)


def test_a_pruned_conv_puts_its_kept_channels_bias_on_the_stripped_ones_grid():
    """InceptionResNetV2's conv (no bias) + BatchNormalization: the bias moved onto
    TFLite's int32 grid (`quantization/_bias.py`) folds the BN, whose `rsqrt`
    differs by one float step between a vector packet and the scalar tail of the
    channel vector. Computed over the whole (masked) vector, a kept channel's
    correction differed from the stripped conv's, one float step on the conv's
    outputs that later quantizers turned into int8 steps (InceptionResNetV2:
    stripped outputs 3.9e-3 from the searched ones)."""
    keras.utils.set_random_seed(0)
    channels = 64
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(channels, 3, use_bias=False, name="producer")(inputs)
    x = keras.layers.BatchNormalization(scale=False, name="producer_bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(8, 1, name="consumer")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    batch_norm = model.get_layer("producer_bn")
    batch_norm.moving_variance.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    batch_norm.moving_mean.assign(rng.normal(0, 0.5, channels).astype("float32"))
    batch_norm.beta.assign(rng.normal(0, 0.5, channels).astype("float32"))
    config = pruned_int8_config()
    data = rng.normal(0, 1, (16, 6, 6, 3)).astype("float32")
    ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=data)
    stripped = ctrl.strip_model(compressed)
    searched_conv, stripped_conv = compressed.get_layer("producer"), stripped.get_layer("producer")
    keep = keras.ops.convert_to_numpy(searched_conv.mask) > 0.5
    assert stripped.get_layer("producer_bn").moving_variance.shape[0] == keep.sum() < channels
    searched_correction = keras.ops.convert_to_numpy(searched_conv._bias_correction(False))
    stripped_correction = keras.ops.convert_to_numpy(stripped_conv._bias_correction(False))
    np.testing.assert_array_equal(searched_correction[keep], stripped_correction)
    searched = keras.ops.convert_to_numpy(compressed(data, training=False))
    deployed = keras.ops.convert_to_numpy(stripped(data, training=False))
    np.testing.assert_array_equal(deployed, searched)
