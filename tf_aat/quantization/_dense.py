"""A quantized Dense computed in the form the TFLite converter maps to one int8 op.

Keras computes a Dense over a feature map (rank > 2: ConvNeXt's pointwise
convolutions, transformer MLPs) as a tensordot: reshape to a matrix, MatMul,
reshape back, then the bias add. The converter fuses a bias into
FULLY_CONNECTED only when it follows the MatMul directly; across the reshape
the FULLY_CONNECTED output has no range, and the op stays float whenever the
bias is not zero (after any training). Here the bias and the activation come
before the reshape back, so TFLite runs one int8 FULLY_CONNECTED and a
RESHAPE that keeps its scale.

Under filter pruning the searched model computes, in inference, the product
of its kept input and output channels alone: the stripped Dense has only
those rows and columns, and a matmul over a shorter (or differently laid
out) axis sums in another order. The float difference is ~1e-7, but under
QAT a value on an output quantizer's rounding boundary then rounds the
other way (ConvNeXtTiny: stripped outputs 5e-3 from the searched ones).
"""

import keras
import tensorflow as tf

from tf_aat import _wrapper


def runs_dense_itself(wrapper):
    return isinstance(wrapper.layer, keras.layers.Dense) and "kernel" in wrapper.weight_quantizers


def _kept_channels(wrapper, training):
    """(input index, output index) of the kept channels where pruning masks some in
    inference, else None (each None: that axis computed whole)."""
    if training:
        return None, None
    keep_in = keep_out = None
    for transform in wrapper.weight_transforms.get("kernel", ()):
        # A transform masking input channels (filter pruning's InputChannelMask)
        # says which it keeps; quantization does not import pruning.
        kept = getattr(transform, "kept_input_channels", None)
        if kept is not None:
            keep_in = tf.convert_to_tensor(kept())
    if wrapper.mask is not None and wrapper.masked_weights.get("kernel", -1) % 2 == 1:
        keep_out = tf.convert_to_tensor(wrapper.mask) > 0.5
    return keep_in, keep_out


def dense_call(wrapper, inputs, training):
    layer = wrapper.layer
    correction = wrapper._bias_correction(training)  # the bias TFLite runs (`_bias.py`)
    x = tf.convert_to_tensor(inputs)
    kernel = tf.cast(wrapper.compressed_weight("kernel"), x.dtype)
    bias = None
    if layer.use_bias:
        bias = wrapper.compressed_weight("bias")
        if correction is not None:
            bias = bias + tf.cast(correction, bias.dtype)
        bias = tf.cast(bias, x.dtype)
    elif correction is not None:
        bias = tf.cast(correction, x.dtype)
    rank = len(x.shape)
    if rank > 2:
        leading = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, x.shape[-1]])
    y = _affine(x, kernel, bias, layer.activation)
    keep_in, keep_out = _kept_channels(wrapper, training)
    if keep_in is not None or keep_out is not None:
        y = _with_kept_channels_compacted(y, x, kernel, bias, layer.activation, keep_in, keep_out)
    if rank > 2:
        y = tf.reshape(y, tf.concat([leading, [kernel.shape[-1]]], axis=0))
    return y


def _affine(x, kernel, bias, activation):
    y = tf.matmul(x, kernel)
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    if activation is not None:
        y = activation(y)
    return y


def _with_kept_channels_compacted(y, x, kernel, bias, activation, keep_in, keep_out):
    """`y` with its kept output channels computed from the kept rows and columns
    only (the stripped Dense's matmul); pruned outputs stay as computed whole."""
    if keep_in is not None:
        rows = tf.where(keep_in)[:, 0]
        x = tf.gather(x, rows, axis=-1)
        kernel = tf.gather(kernel, rows, axis=0)
    if keep_out is None:
        return _affine(x, kernel, bias, activation)
    columns = tf.where(keep_out)[:, 0]
    kernel = tf.gather(kernel, columns, axis=1)
    bias = None if bias is None else tf.gather(bias, columns)
    compacted = _affine(x, kernel, bias, activation)
    # Back to full width: each kept channel from the compacted result, each pruned
    # one (a trailing pad entry) from the whole computation.
    padded = tf.concat([compacted, y[:, :1]], axis=-1)
    position = tf.where(
        keep_out, tf.cumsum(tf.cast(keep_out, tf.int32)) - 1, tf.size(columns, tf.int32)
    )
    return tf.where(keep_out, tf.gather(padded, position, axis=-1), y)


_wrapper.register_call_override(runs_dense_itself, dense_call)
