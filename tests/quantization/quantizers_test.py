"""Fake-quantizer layers: the int8 grids TFLite uses, range updates, serialization."""

import keras
import numpy as np

from tf_aat.quantization import ActivationQuantizer, WeightQuantizer


def test_weight_quantizer_per_channel_symmetric_narrow_range():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 8)).astype("float32")
    quantized = keras.ops.convert_to_numpy(WeightQuantizer()(kernel))
    scale = np.abs(kernel).max(axis=(0, 1, 2)) / 127.0
    levels = quantized / scale
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert levels.min() >= -127.001 and levels.max() <= 127.001
    np.testing.assert_allclose(quantized, kernel, atol=scale.max() / 2 + 1e-6)


def test_depthwise_channels_are_input_times_multiplier():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 4, 2)).astype("float32")
    kernel[..., 1, 0] *= 100.0  # one channel with a much larger range
    quantized = keras.ops.convert_to_numpy(WeightQuantizer(channel_axes=(-2, -1))(kernel))
    small = np.abs(kernel[..., 0, 0]).max() / 127.0
    np.testing.assert_allclose(quantized[..., 0, 0], kernel[..., 0, 0], atol=small / 2 + 1e-6)


def test_pruned_channel_stays_zero():
    kernel = np.ones((1, 1, 2, 3), "float32")
    kernel[..., 1] = 0.0
    quantized = keras.ops.convert_to_numpy(WeightQuantizer()(kernel))
    assert np.all(quantized[..., 1] == 0.0) and np.all(np.isfinite(quantized))


def test_activation_quantizer_ema_in_training_and_fixed_in_inference():
    quantizer = ActivationQuantizer(ema_decay=0.5)
    x = np.linspace(-1.0, 3.0, 64, dtype="float32").reshape(4, 16)
    quantizer(x, training=True)  # first batch sets the range
    assert float(quantizer.range_min.numpy()) == -1.0
    assert float(quantizer.range_max.numpy()) == 3.0
    quantizer(2.0 * x, training=True)
    assert float(quantizer.range_max.numpy()) == 4.5  # 0.5 * 3 + 0.5 * 6
    before = float(quantizer.range_max.numpy())
    y = keras.ops.convert_to_numpy(quantizer(10.0 * x, training=False))
    assert float(quantizer.range_max.numpy()) == before
    assert y.max() <= 4.5 + 1e-5
    # Zero is exactly representable, so every output is a whole number of steps from it.
    steps = y / quantizer.quantization_step
    np.testing.assert_allclose(steps, np.round(steps), atol=2e-2)


def test_zero_is_exact_after_relu_range():
    quantizer = ActivationQuantizer()
    quantizer.build()
    quantizer.set_range(0.0, 6.0)
    y = keras.ops.convert_to_numpy(quantizer(np.zeros((2, 3), "float32")))
    assert np.all(y == 0.0)


def test_serialization_round_trip():
    for layer in (WeightQuantizer(per_channel=False, channel_axes=(-2, -1)), ActivationQuantizer()):
        config = keras.saving.serialize_keras_object(layer)
        restored = keras.saving.deserialize_keras_object(config)
        assert type(restored) is type(layer)
        assert restored.get_config() == layer.get_config()
