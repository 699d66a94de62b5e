"""A quantized Dense computed in the form the TFLite converter maps to one int8 op.

Keras computes a Dense over a feature map (rank > 2: ConvNeXt's pointwise
convolutions, transformer MLPs) as a tensordot: reshape to a matrix, MatMul,
reshape back, then the bias add. The converter fuses a bias into
FULLY_CONNECTED only when it follows the MatMul directly; across the reshape
the FULLY_CONNECTED output has no range, and the op stays float whenever the
bias is not zero (after any training). Here the bias and the activation come
before the reshape back, so TFLite runs one int8 FULLY_CONNECTED and a
RESHAPE that keeps its scale.
"""

import keras
import tensorflow as tf

from tf_aat import _wrapper


def runs_dense_itself(wrapper):
    return isinstance(wrapper.layer, keras.layers.Dense) and "kernel" in wrapper.weight_quantizers


def dense_call(wrapper, inputs, training):
    layer = wrapper.layer
    correction = wrapper._bias_correction(training)  # the bias TFLite runs (`_bias.py`)
    x = tf.convert_to_tensor(inputs)
    kernel = tf.cast(wrapper.compressed_weight("kernel"), x.dtype)
    rank = len(x.shape)
    if rank > 2:
        leading = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, x.shape[-1]])
    y = tf.matmul(x, kernel)
    if layer.use_bias:
        bias = wrapper.compressed_weight("bias")
        if correction is not None:
            bias = bias + tf.cast(correction, bias.dtype)
        y = tf.nn.bias_add(y, tf.cast(bias, y.dtype))
    elif correction is not None:
        y = y + tf.cast(correction, y.dtype)
    if layer.activation is not None:
        y = layer.activation(y)
    if rank > 2:
        y = tf.reshape(y, tf.concat([leading, [kernel.shape[-1]]], axis=0))
    return y


_wrapper.register_call_override(runs_dense_itself, dense_call)
