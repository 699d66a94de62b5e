"""Fake-quantizer layers: what int8 TFLite does to weights and activations, simulated in float.

Both use TensorFlow's `FakeQuantWithMinMaxVars[PerChannel]` ops, which the
TFLite converter turns into real int8 quantization parameters. Their gradient
is the straight-through estimator inside the range and zero outside it.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

# A pruned (all-zero) channel has no range; this keeps the scale finite.
_MINIMAL_RANGE = 1e-6


@keras.saving.register_keras_serializable(package="tf_aat")
class WeightQuantizer(keras.layers.Layer):
    """Fake-quantizes a weight tensor symmetrically, per output channel or per tensor.

    The range is the largest absolute value of the current weights, computed in
    every call (as the converter freezes it), so it follows training and
    pruning masks without state. `channel_axes` are the axes that together
    index the output channels TFLite quantizes: `(-1,)` for Conv and Dense
    kernels, `(-2, -1)` for a DepthwiseConv2D kernel `(h, w, in, multiplier)`,
    whose TFLite channels are `in * multiplier`.

    Args:
        num_bits: bits of the integer type (TFLite int8 needs 8).
        per_channel: one range per output channel instead of one per tensor.
        narrow_range: use `[-127, 127]` instead of `[-128, 127]` (TFLite's
            weight spec).
        channel_axes: the channel axes described above.

    Example:

    ```python
    quantizer = tf_aat.quantization.WeightQuantizer()
    kernel = np.random.rand(3, 3, 4, 8).astype("float32")
    quantized = quantizer(kernel)  # 8 ranges, 255 levels each
    ```
    """

    def __init__(
        self, num_bits=8, per_channel=True, narrow_range=True, channel_axes=(-1,), **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(num_bits, int) or not 2 <= num_bits <= 16:
            raise ValueError(f"Expected num_bits in [2, 16]. Received: num_bits={num_bits!r}")
        self.num_bits = num_bits
        self.per_channel = bool(per_channel)
        self.narrow_range = bool(narrow_range)
        self.channel_axes = tuple(int(a) for a in channel_axes)

    def build(self, input_shape=None):
        """Nothing to create: the range is computed from the weight in every call."""
        self.built = True

    def _channel_shape(self, shape):
        rank = len(shape)
        axes = sorted(a % rank for a in self.channel_axes)
        if axes != list(range(rank - len(axes), rank)):
            raise ValueError(
                "Expected the channel axes to be the trailing axes of the weight. "
                f"Received: channel_axes={self.channel_axes}, weight shape={tuple(shape)}"
            )
        return axes

    def call(self, inputs):
        """Fake-quantizes `inputs` (the weight) to `num_bits` with a symmetric range.

        Args:
            inputs: the float weight tensor.

        Returns:
            A tensor of the same shape and dtype, on the integer grid of the
            range `[-max|w|, max|w|]` (per channel or per tensor).
        """
        # Computed in float32 and cast back (a float16 kernel under the
        # "mixed_float16" policy), as `keras.quantizers` does: TensorFlow's
        # fake-quant ops take float32 only.
        inputs = tf.convert_to_tensor(inputs)
        x = tf.cast(inputs, tf.float32)
        if not self.per_channel:
            bound = tf.maximum(tf.reduce_max(tf.abs(x)), _MINIMAL_RANGE)
            quantized = tf.quantization.fake_quant_with_min_max_vars(
                x, -bound, bound, num_bits=self.num_bits, narrow_range=self.narrow_range
            )
            return tf.cast(quantized, inputs.dtype)
        shape = x.shape
        axes = self._channel_shape(shape)
        if len(shape) > 4:
            return tf.cast(self._per_channel_high_rank(x, axes), inputs.dtype)
        if len(axes) > 1:
            # Merge the channel axes into the last one, as TFLite lays the kernel out.
            channels = int(np.prod([shape[a] for a in axes]))
            x = tf.reshape(x, [*shape[: axes[0]], channels])
        quantized = self._per_channel(x)
        if len(axes) > 1:
            quantized = tf.reshape(quantized, shape)
        return tf.cast(quantized, inputs.dtype)

    def _per_channel(self, x):
        """Per-channel fake quantization along the last axis of `x`."""
        bound = tf.maximum(
            tf.reduce_max(tf.abs(x), axis=list(range(len(x.shape) - 1))), _MINIMAL_RANGE
        )
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(
            x, -bound, bound, num_bits=self.num_bits, narrow_range=self.narrow_range
        )

    def _per_channel_high_rank(self, x, axes):
        """A kernel of rank > 4 (Conv3D): TensorFlow's per-channel fake-quant op
        runs forward on it (one op, which the converter reads) but its gradient
        takes rank 4 at most, so the gradient is that of the same quantization
        computed on the kernel seen as a matrix (rows by channels)."""
        shape = x.shape
        channels = int(np.prod([shape[a] for a in axes]))

        @tf.custom_gradient
        def quantize(x):
            outputs = tf.reshape(
                self._per_channel(tf.reshape(x, [*shape[: axes[0]], channels])), shape
            )

            def gradient(upstream):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    reference = tf.reshape(self._per_channel(tf.reshape(x, [-1, channels])), shape)
                return tape.gradient(reference, x, output_gradients=upstream)

            return outputs, gradient

        return quantize(x)

    def slice_channels(self, keep):
        """A quantizer for the weight with only the `keep` channels (it holds no state)."""
        del keep
        return type(self).from_config(self.get_config())

    def compute_output_shape(self, input_shape):
        """The weight's own shape."""
        return input_shape

    def get_config(self):
        """The constructor arguments, for `.keras` saving."""
        config = super().get_config()
        config.update(
            num_bits=self.num_bits,
            per_channel=self.per_channel,
            narrow_range=self.narrow_range,
            channel_axes=list(self.channel_axes),
        )
        return config


def _global_min_max(x):
    """The minimum and maximum of `x` over the whole global batch.

    Under `tf.distribute` (MirroredStrategy, MultiWorkerMirroredStrategy) each
    replica sees only its part of the batch: the replicas gather their minima
    and maxima, so every replica moves its range by the same amount, the one a
    single device would compute on the whole batch, and the ranges stay
    identical on every replica.
    """
    low, high = tf.reduce_min(x), tf.reduce_max(x)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return low, high
    gathered = context.all_gather(tf.stack([low, -high])[None], axis=0)
    both = tf.reduce_min(gathered, axis=0)
    return both[0], -both[1]


@keras.saving.register_keras_serializable(package="tf_aat")
class ActivationQuantizer(keras.layers.Layer):
    """Fake-quantizes a tensor per tensor with a range learned from the data.

    The range lives in two non-trainable variables, `range_min` and
    `range_max`. The controller initialises them from calibration data; in
    training mode each batch moves them by an exponential moving average of the
    batch minimum and maximum (the first training batch sets them directly if
    no calibration ran), and is itself quantized with the range stored before
    that update. Inference uses them as they are, as TFLite will.

    Args:
        num_bits: bits of the integer type (TFLite int8 needs 8).
        symmetric: a range `[-m, m]` (zero point 0) instead of `[min, max]`.
        ema_decay: weight of the old range in each training update.

    Example:

    ```python
    quantizer = tf_aat.quantization.ActivationQuantizer()
    y = quantizer(np.random.randn(4, 8).astype("float32"), training=True)
    ```
    """

    def __init__(self, num_bits=8, symmetric=False, ema_decay=0.999, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_bits, int) or not 2 <= num_bits <= 16:
            raise ValueError(f"Expected num_bits in [2, 16]. Received: num_bits={num_bits!r}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"Expected ema_decay in [0, 1). Received: ema_decay={ema_decay!r}")
        self.num_bits = num_bits
        self.symmetric = bool(symmetric)
        self.ema_decay = float(ema_decay)
        self.observer = None  # set by range initialisation, read only in eager calls
        self.supports_masking = True

    def build(self, input_shape=None):
        """Creates the non-trainable `range_min`, `range_max` and `initialized` variables."""
        self.range_min = self.add_weight(
            name="range_min",
            shape=(),
            initializer=keras.initializers.Constant(-6.0),
            trainable=False,
        )
        self.range_max = self.add_weight(
            name="range_max",
            shape=(),
            initializer=keras.initializers.Constant(6.0),
            trainable=False,
        )
        self.initialized = self.add_weight(
            name="initialized", shape=(), initializer="zeros", trainable=False
        )
        self.built = True

    def _bounds(self, low, high):
        if self.symmetric:
            bound = tf.maximum(tf.maximum(-low, high), _MINIMAL_RANGE)
            return -bound, bound
        # TFLite needs 0 inside the range (it must be exactly representable).
        low = tf.minimum(low, 0.0)
        high = tf.maximum(tf.maximum(high, 0.0), low + _MINIMAL_RANGE)
        return low, high

    def call(self, inputs, training=None):
        """Fake-quantizes `inputs` to the current range (per tensor, asymmetric by default).

        While training the range follows the data (see the class docstring);
        during range initialisation the layer only records the float values
        and returns `inputs` unchanged.

        Args:
            inputs: the activation tensor.
            training: whether the call is a training step.

        Returns:
            A tensor of the same shape and dtype as `inputs`.
        """
        x = tf.convert_to_tensor(inputs)
        if self.observer is not None:
            # Range initialisation: record the float tensor, pass it through unchanged.
            self.observer(self, x)
            return x
        low = tf.cast(self.range_min, x.dtype)
        high = tf.cast(self.range_max, x.dtype)
        if training:
            # The batch quantizes with the stored range (what TFLite will use) while the
            # update runs beside it; waiting for the batch's min/max would serialise them
            # and cost about a fifth of a ResNet training step on CPU.
            started = tf.cast(self.initialized, x.dtype)
            decay = self.ema_decay * started
            batch_min, batch_max = _global_min_max(x)
            self.range_min.assign(
                tf.cast(decay * low + (1.0 - decay) * batch_min, self.range_min.dtype)
            )
            self.range_max.assign(
                tf.cast(decay * high + (1.0 - decay) * batch_max, self.range_max.dtype)
            )
            self.initialized.assign(ops.ones_like(self.initialized))
        low, high = self._bounds(tf.cast(low, tf.float32), tf.cast(high, tf.float32))
        y = tf.quantization.fake_quant_with_min_max_vars(
            tf.cast(x, tf.float32), low, high, num_bits=self.num_bits, narrow_range=False
        )
        return tf.cast(y, x.dtype)

    def set_range(self, low, high):
        """Sets the range (for example from calibration) and marks it initialised."""
        self.range_min.assign(float(low))
        self.range_max.assign(float(high))
        self.initialized.assign(1.0)

    def step(self):
        """The float value of one integer step with the current range, as a float32
        tensor (what `quantization_step` gives as a number, also inside a traced call)."""
        low, high = self._bounds(
            tf.cast(self.range_min, tf.float32), tf.cast(self.range_max, tf.float32)
        )
        return (high - low) / (2**self.num_bits - 1)

    @property
    def quantization_step(self):
        """The float value of one integer step with the current range."""
        low, high = self._bounds(
            tf.constant(float(self.range_min.numpy())), tf.constant(float(self.range_max.numpy()))
        )
        return float(high - low) / (2**self.num_bits - 1)

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return input_shape

    def get_config(self):
        """The constructor arguments, for `.keras` saving."""
        config = super().get_config()
        config.update(num_bits=self.num_bits, symmetric=self.symmetric, ema_decay=self.ema_decay)
        return config


# TFLite's int8 kernels of these activations have a fixed output scale and zero
# point (real = (q - zero_point) * scale, q in [-128, 127]); the ranges below are
# exactly those grids, so the Keras model rounds where TFLite will.
FIXED_OUTPUT_RANGES = {
    "softmax": (0.0, 255.0 / 256.0),  # scale 1/256, zero point -128
    "sigmoid": (0.0, 255.0 / 256.0),  # LOGISTIC: scale 1/256, zero point -128
    "tanh": (-1.0, 127.0 / 128.0),  # scale 1/128, zero point 0
    "log_softmax": (-255.0 * 16.0 / 256.0, 0.0),  # scale 16/256, zero point 127
}


@keras.saving.register_keras_serializable(package="tf_aat")
class FixedRangeQuantizer(keras.layers.Layer):
    """Fake-quantizes to a fixed range: the output of an activation TFLite runs
    in int8 with a fixed scale (softmax, sigmoid, tanh, log_softmax).

    Args:
        low, high: the range; see `FIXED_OUTPUT_RANGES`.
        num_bits: bits of the integer type.

    Example:

    ```python
    quantizer = tf_aat.quantization.FixedRangeQuantizer(0.0, 255 / 256)
    y = quantizer(keras.ops.softmax(np.random.randn(2, 10).astype("float32")))
    ```
    """

    def __init__(self, low=0.0, high=255.0 / 256.0, num_bits=8, **kwargs):
        super().__init__(**kwargs)
        if not float(low) <= 0.0 <= float(high) or float(low) == float(high):
            raise ValueError(
                "Expected a range with low <= 0 <= high and low < high (0 must be exact). "
                f"Received: low={low}, high={high}"
            )
        self.low = float(low)
        self.high = float(high)
        self.num_bits = int(num_bits)
        self.supports_masking = True

    def build(self, input_shape=None):
        """Nothing to create: the range is fixed."""
        self.built = True

    def call(self, inputs):
        """Fake-quantizes `inputs` to `[low, high]` with `num_bits`.

        Returns:
            A tensor of the same shape and dtype as `inputs`.
        """
        x = tf.convert_to_tensor(inputs)
        y = tf.quantization.fake_quant_with_min_max_args(
            tf.cast(x, tf.float32), min=self.low, max=self.high, num_bits=self.num_bits
        )
        return tf.cast(y, x.dtype)

    @property
    def quantization_step(self):
        """The float value of one integer step: `(high - low) / (2**num_bits - 1)`."""
        return (self.high - self.low) / (2**self.num_bits - 1)

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return input_shape

    def get_config(self):
        """`low`, `high` and `num_bits`, for `.keras` saving."""
        return {
            **super().get_config(),
            "low": self.low,
            "high": self.high,
            "num_bits": self.num_bits,
        }
