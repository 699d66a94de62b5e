"""A pruned BatchNormalization computes its kept channels as the stripped one will.

In inference BatchNormalization scales each channel by `rsqrt(variance + epsilon)`.
TensorFlow's CPU kernel computes `rsqrt` with a SIMD approximation on whole
vector packets and exactly on the scalar tail of the channel vector, so the
same channel can differ by one float step depending on its *position*: strip
removes the pruned channels and moves the kept ones, and some of them change
between packet and tail. Alone that is a 1e-7 relative difference; under QAT
the next quantizer turns it into a whole integer step wherever a value sits
on a rounding boundary, and steps grow with depth (InceptionResNetV2:
stripped outputs 6e-3 away from the searched ones). Here the searched model
computes its kept channels on the compacted channel vector, the very
computation the stripped model runs, so strip changes no quantized value.
"""

import keras
import tensorflow as tf
from keras import ops

from tf_aat import _wrapper


def computes_kept_channels_compacted(wrapper):
    """True for a channel-masked BatchNormalization (its weights otherwise as they are)."""
    return (
        isinstance(wrapper.layer, keras.layers.BatchNormalization)
        and wrapper.mask is not None
        and not wrapper.weight_quantizers
        and not wrapper.weight_transforms
    )


def batch_norm_call(wrapper, inputs, training):
    """The wrapped BatchNormalization, its kept channels computed on their own in inference."""
    layer = wrapper.layer
    outputs = wrapper.call_layer(inputs, training=training)
    x = tf.convert_to_tensor(inputs)
    if (training and layer.trainable) or layer.axis % len(x.shape) != len(x.shape) - 1:
        # Batch statistics (the stripped model trains on its own), or channels not
        # last (which pruning does not follow).
        return outputs
    keep = ops.convert_to_tensor(wrapper.mask) > 0.5
    index = tf.where(keep)[:, 0]
    compute_dtype = keras.backend.result_type(x.dtype, "float32")

    def kept(value):
        return ops.cast(tf.gather(ops.convert_to_tensor(value), index), compute_dtype)

    compacted = ops.batch_normalization(
        ops.cast(tf.gather(x, index, axis=-1), compute_dtype),
        mean=kept(layer.moving_mean),
        variance=kept(layer.moving_variance),
        axis=-1,
        offset=kept(wrapper.compressed_weight("beta")) if layer.center else None,
        scale=kept(wrapper.compressed_weight("gamma")) if layer.scale else None,
        epsilon=layer.epsilon,
    )
    compacted = ops.cast(compacted, outputs.dtype)
    # Back to full width: each kept channel from the compacted result, each pruned
    # one (a trailing pad entry) from the full computation.
    padded = tf.concat([compacted, outputs[..., :1]], axis=-1)
    position = tf.where(keep, tf.cumsum(tf.cast(keep, tf.int32)) - 1, tf.size(index, tf.int32))
    return tf.where(keep, tf.gather(padded, position, axis=-1), outputs)


_wrapper.register_call_override(computes_kept_channels_compacted, batch_norm_call)
