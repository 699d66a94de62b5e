"""`InputChannelMask`: zeroes a consumer's weights that read pruned channels.

A pruned channel is zero, so these weights do not change the output; they
do change a weight quantizer's range, which spans the whole kernel of an
output channel. Masking them makes the quantization-aware model use the
ranges the stripped model (where they are removed) will have, so strip
changes no quantized value.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tf_aat")
class InputChannelMask(keras.layers.Layer):
    """A weight transform multiplying a weight by a 0/1 mask along its input axis.

    Args:
        axis: the weight's input-channel axis (-2 for Conv and Dense kernels).

    The mask is a non-trainable variable of the axis's length, set by the
    filter pruning controller; an axis with k entries per input channel (a
    separable conv's pointwise kernel) has each channel's flag repeated k
    times.
    """

    def __init__(self, axis=-2, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def build(self, input_shape):
        self.mask = self.add_weight(
            name="input_mask",
            shape=(int(input_shape[self.axis]),),
            initializer="ones",
            trainable=False,
        )
        self.built = True

    def call(self, value):
        shape = [1] * len(value.shape)
        shape[self.axis % len(value.shape)] = -1
        return value * ops.cast(ops.reshape(self.mask, shape), value.dtype)

    def kept_input_channels(self):
        """A bool tensor along `axis`: True where the input channel is kept (read by
        algorithms that compute on the kept channels only, through this method, so
        they need not import pruning)."""
        return ops.convert_to_tensor(self.mask) > 0.5

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
