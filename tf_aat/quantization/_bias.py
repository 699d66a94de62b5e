"""The bias TFLite runs: a quantized op's bias on the int32 grid of its accumulator.

TFLite's int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED add an int32
bias, `round(b / (s_in * s_w))` steps of the accumulator, where `b` is the
bias after the converter folds the following BatchNormalization into the op,
`s_in` the scale of the op's int8 input and `s_w` the (folded) per-channel
weight scale. A float bias differs from it by up to half an accumulator
step, and the op's output then rounds the other way wherever a value sits
that close to a rounding boundary: on a deep residual net (ResNet50) those
one-step differences grow into a 12% relative difference at the output.

At inference (never while training, which keeps its cost and its
gradients) a quantized wrapper therefore moves its bias onto that grid. It
finds `s_in` and the BatchNormalization in the model's layer graph, from
the wrapper's own nodes, so the correction needs no state and holds in the
searched model, the stripped one and a `.keras` file loaded again.
"""

import keras
import tensorflow as tf

from tf_aat import _layer_rules as rules
from tf_aat import _wrapper
from tf_aat._layer_rules import unwrap
from tf_aat._layer_types import DEPTHWISE, SEPARABLE
from tf_aat.quantization._convolution import runs_convolution_itself
from tf_aat.quantization._quantizers import (
    _MINIMAL_RANGE,
    ActivationQuantizer,
    FixedRangeQuantizer,
    WeightQuantizer,
)

_SUPPORTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def bias_correction(wrapper, training):
    """What to add to `wrapper`'s bias (per output channel) so that, after the
    BatchNormalization TFLite folds into the op, the bias is on TFLite's int32
    grid; None where there is nothing to correct (training, or a layer, input
    or graph this does not cover)."""
    layer = wrapper.layer
    if training or not isinstance(layer, _SUPPORTED) or isinstance(layer, SEPARABLE):
        return None
    if type(layer).__name__.endswith("Transpose") or runs_convolution_itself(wrapper):
        return None
    quantizer = wrapper.weight_quantizers.get("kernel")
    if not isinstance(quantizer, WeightQuantizer):
        return None
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    linear = layer.activation in (None, keras.activations.linear)
    if not layer.use_bias and not linear:
        return None  # no bias to move, and an output shift would pass the activation
    input_step = _input_step(wrapper)
    if input_step is None:
        return None
    kernel = tf.cast(wrapper._masked_weight("kernel"), tf.float32)
    weight_step = _weight_step(quantizer, kernel, isinstance(layer, DEPTHWISE))
    channels = weight_step.shape[0]
    bias = (
        tf.cast(wrapper._masked_weight("bias"), tf.float32)
        if layer.use_bias
        else tf.zeros([channels], tf.float32)
    )
    batch_norm = _folded_batch_norm(wrapper) if linear else None
    correction = _on_grid(input_step, weight_step, bias, batch_norm, channels, None)
    keep = _kept_output_channels(wrapper, channels)
    if keep is None:
        return correction
    # Under filter pruning the kept channels are computed on the compacted channel
    # vector, as the stripped layer computes them: `rsqrt` in the folded
    # BatchNormalization depends on a channel's position (see
    # `pruning/_batch_norm.py`), and a one-step difference in the correction
    # moves the output off the stripped one's (InceptionResNetV2: 3.9e-3).
    index = tf.where(keep)[:, 0]
    compacted = _on_grid(
        input_step,
        tf.gather(weight_step, index),
        tf.gather(bias, index),
        batch_norm,
        channels,
        index,
    )
    scattered = tf.scatter_nd(index[:, None], compacted, [channels])
    return tf.where(keep, scattered, correction)


def _on_grid(input_step, weight_step, bias, batch_norm, channels, index):
    """The correction of each channel (those of `index` only, where given)."""
    count = tf.shape(weight_step)[0]
    factor, shift = tf.ones([count], tf.float32), tf.zeros([count], tf.float32)
    if batch_norm is not None:
        factor, shift = _batch_norm_affine(batch_norm, channels, index)
    folded = bias * factor + shift
    grid = input_step * weight_step * tf.abs(factor)
    usable = (grid > 0.0) & (factor != 0.0)
    safe_grid = tf.where(usable, grid, tf.ones_like(grid))
    on_grid = tf.round(folded / safe_grid) * safe_grid
    safe_factor = tf.where(usable, factor, tf.ones_like(factor))
    return tf.where(usable, (on_grid - folded) / safe_factor, tf.zeros_like(folded))


def _kept_output_channels(wrapper, channels):
    """The kept-channel flags of a pruned wrapper's `channels` outputs, or None."""
    if wrapper.mask is None or wrapper.mask.shape[0] != channels:
        return None
    return tf.convert_to_tensor(wrapper.mask) > 0.5


def _weight_step(quantizer, kernel, depthwise):
    """The float value of one integer step of each output channel's weights."""
    levels = 2**quantizer.num_bits - 1 - int(quantizer.narrow_range)
    if quantizer.per_channel:
        axes = list(range(len(kernel.shape) - (2 if depthwise else 1)))
        bound = tf.reshape(tf.reduce_max(tf.abs(kernel), axis=axes), [-1])
    else:
        channels = kernel.shape[-1] * (kernel.shape[-2] if depthwise else 1)
        bound = tf.fill([channels], tf.reduce_max(tf.abs(kernel)))
    return 2.0 * tf.maximum(bound, _MINIMAL_RANGE) / levels


def _input_step(wrapper):
    """The step of the int8 tensor `wrapper` reads: that of the quantizer before
    it, through the layers that keep their input's scale (padding, max pooling,
    reshapes); None where the graph does not say."""
    nodes = getattr(wrapper, "_inbound_nodes", [])
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        return None
    tensor = nodes[0].input_tensors[0]
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        operation = history.operation
        if isinstance(operation, ActivationQuantizer):
            if operation.observer is not None:
                return None  # range initialisation: the float model is observed, as it is
            return operation.step()
        if isinstance(operation, FixedRangeQuantizer):
            return tf.constant(operation.quantization_step, tf.float32)
        if not rules.rule_for(unwrap(operation)).keeps_input_scale:
            return None
        node = operation._inbound_nodes[history.node_index]
        if len(node.input_tensors) != 1:
            return None
        tensor = node.input_tensors[0]


def _folded_batch_norm(wrapper):
    """The BatchNormalization (maybe wrapped) that reads only `wrapper`'s output
    and that the converter folds into the op, or None."""
    nodes = getattr(wrapper, "_outbound_nodes", [])
    if len(nodes) != 1:
        return None
    reader = nodes[0].operation
    batch_norm = unwrap(reader)
    if not isinstance(batch_norm, keras.layers.BatchNormalization):
        return None
    if len(getattr(reader, "_inbound_nodes", [])) != 1:
        return None
    rank = len(reader._inbound_nodes[0].input_tensors[0].shape)
    if batch_norm.axis not in (-1, rank - 1):
        return None
    return reader


def _batch_norm_affine(reader, channels, index=None):
    """Inference BatchNormalization as `x * factor + shift`, computed as Keras does
    (on the channels of `index` only, where given)."""
    batch_norm = unwrap(reader)

    def kept(value):
        value = tf.cast(value, tf.float32)
        return value if index is None else tf.gather(value, index)

    def weight(name, default):
        if getattr(batch_norm, name, None) is None:
            return kept(tf.fill([channels], default))
        if isinstance(reader, _wrapper.CompressionWrapper) and name in reader.masked_weights:
            return kept(reader._masked_weight(name))
        return kept(getattr(batch_norm, name))

    mean = kept(batch_norm.moving_mean)
    variance = kept(batch_norm.moving_variance)
    factor = tf.math.rsqrt(variance + batch_norm.epsilon) * weight("gamma", 1.0)
    return factor, weight("beta", 0.0) - mean * factor


_wrapper.register_bias_correction(bias_correction)
