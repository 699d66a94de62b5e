"""The convolutions QAT computes itself, in the form TFLite's converter maps to int8 ops.

A `CompressionWrapper` runs its layer's own code, except for the quantized
convolutions below, which this module computes (registered with the wrapper
as a call override, so the wrapper knows nothing of quantization).
"""

import keras
import tensorflow as tf
from keras import ops

from tf_aat import _wrapper
from tf_aat._layer_types import CONVOLUTIONS_1D, DEPTHWISE, SEPARABLE


def runs_convolution_itself(wrapper):
    if wrapper.intermediate_quantizer is not None:
        return True
    if not wrapper.weight_quantizers:
        return False
    if isinstance(wrapper.layer, CONVOLUTIONS_1D):
        return True
    dilated = max(getattr(wrapper.layer, "dilation_rate", (1,))) > 1
    return dilated and isinstance(wrapper.layer, (keras.layers.Conv2D, DEPTHWISE))


def convolution_call(wrapper, inputs, training):
    """The wrapped convolution computed here, as TFLite will run it.

    Three cases of a quantized conv need this instead of the layer's own
    call. A separable conv is DEPTHWISE_CONV_2D then CONV_2D in TFLite,
    with an int8 tensor between them that `intermediate_quantizer`
    rounds. A 1D conv runs as a 2D conv of height 1, and its kernel must
    be fake-quantized after it gains that axis: the converter loses a
    per-channel quantization axis through the expansion the layer would
    do itself. A dilated conv must be one TensorFlow op (see `_conv`), or
    the converter leaves it float.
    """
    layer = wrapper.layer
    one_d = len(inputs.shape) == 3
    channels_first = layer.data_format == "channels_first"
    strides, dilation, padding = layer.strides, layer.dilation_rate, layer.padding

    def kernel(name):
        value = wrapper._masked_weight(name)
        if one_d:
            value = ops.expand_dims(value, 0)
        quantizer = wrapper.weight_quantizers.get(name)
        return value if quantizer is None else quantizer(value)

    x = inputs
    if one_d:
        if padding == "causal":
            left = dilation[0] * (layer.kernel_size[0] - 1)
            x = ops.pad(
                x,
                [[0, 0], [0, 0], [left, 0]] if channels_first else [[0, 0], [left, 0], [0, 0]],
            )
            padding = "valid"
        x = ops.expand_dims(x, 2 if channels_first else 1)
        strides, dilation = (1, *strides), (1, *dilation)
    if isinstance(layer, SEPARABLE):
        x = _conv(wrapper, x, kernel("depthwise_kernel"), strides, padding, dilation, True)
        if wrapper.intermediate_quantizer is not None:
            x = wrapper.intermediate_quantizer(x, training=training)
        x = _conv(wrapper, x, kernel("pointwise_kernel"), (1, 1), "valid", (1, 1), False)
    else:
        depthwise = isinstance(layer, DEPTHWISE)
        x = _conv(wrapper, x, kernel("kernel"), strides, padding, dilation, depthwise)
    # Bias and activation before the squeeze, so the converter fuses them into the op.
    if layer.use_bias:
        bias = wrapper._masked_weight("bias")
        shape = [1] * (len(x.shape) - 1) + [-1]
        if channels_first:
            shape = [1, -1] + [1] * (len(x.shape) - 2)
        x = x + ops.reshape(bias, shape)
    if layer.activation is not None:
        x = layer.activation(x)
    if one_d:
        x = ops.squeeze(x, axis=2 if channels_first else 1)
    return x


def _conv(wrapper, x, kernel, strides, padding, dilation, depthwise):
    """One 2D convolution as a single TensorFlow op the converter maps to one int8
    op (Keras's own ops split a dilated one into space-to-batch, conv, batch-to-space).

    It must also run on TensorFlow's default CPU kernels, which refuse unequal row
    and column strides in a depthwise conv and any dilation in a depthwise conv or
    a conv's gradient; with oneDNN on (TF_ENABLE_ONEDNN_OPTS=1) they all run. So a
    1D conv (height 1, kernel height 1) takes its column stride and dilation for
    its rows too, which changes no value or shape there, as Keras's own
    DepthwiseConv1D does; the dilated ops are computed as `_conv2d` and
    `_depthwise_conv2d` say.
    """
    channels_first = wrapper.layer.data_format == "channels_first"
    if x.shape[2 if channels_first else 1] == 1 and kernel.shape[0] == 1:
        strides, dilation = (strides[1],) * 2, (dilation[1],) * 2
    native = not channels_first and len(x.shape) == 4
    if native and depthwise and max(strides) > 1 and max(dilation) > 1:
        native = False  # TensorFlow's depthwise op takes one or the other
    if not native:
        convolve = ops.depthwise_conv if depthwise else ops.conv
        return convolve(
            x,
            kernel,
            strides=strides,
            padding=padding,
            data_format=wrapper.layer.data_format,
            dilation_rate=dilation,
        )
    if depthwise:
        return _depthwise_conv2d(x, kernel, [1, *strides, 1], padding.upper(), list(dilation))
    return _conv2d(x, kernel, [1, *strides, 1], padding.upper(), list(dilation))


def _conv2d(x, kernel, strides, padding, dilations):
    """`tf.nn.conv2d` with its dilation in the op, and a gradient that every CPU runs.

    The forward op is the one the converter maps to a dilated CONV_2D; TensorFlow's
    default CPU kernels compute it but not its gradient ("do not yet support
    dilation rates larger than 1"), so the gradient is that of `tf.nn.convolution`,
    which computes a dilated conv as space-to-batch, conv, batch-to-space.
    """
    if max(dilations) == 1:
        return tf.nn.conv2d(x, kernel, strides, padding)

    @tf.custom_gradient
    def convolve(x, kernel):
        outputs = tf.nn.conv2d(x, kernel, strides, padding, dilations=[1, *dilations, 1])

        def gradient(upstream):
            return _reference_gradient(tf.nn.convolution, x, kernel, padding, dilations, upstream)

        return outputs, gradient

    return convolve(x, kernel)


def _depthwise_conv2d(x, kernel, strides, padding, dilations):
    """`tf.nn.depthwise_conv2d` as one DepthwiseConv2dNative op, also when dilated.

    `tf.nn.depthwise_conv2d` computes a dilated one as space-to-batch, conv,
    batch-to-space, which the converter leaves float; the native op takes the
    dilation itself. TensorFlow's default CPU kernel of that op refuses a dilation
    (only oneDNN's kernel takes it), so the op runs compiled by XLA, whose CPU
    kernel takes it on every machine; the converter reads the op inside. Its CPU
    gradient ignores the dilation (oneDNN's too), so the gradient is that of
    `tf.nn.depthwise_conv2d`.
    """
    if max(dilations) == 1:
        return tf.nn.depthwise_conv2d(x, kernel, strides, padding)

    @tf.custom_gradient
    def convolve(x, kernel):
        outputs = _xla_depthwise_conv2d(x, kernel, strides, padding, [1, *dilations, 1])

        def gradient(upstream):
            return _reference_gradient(
                tf.nn.depthwise_conv2d, x, kernel, padding, dilations, upstream, strides=[1] * 4
            )

        return outputs, gradient

    return convolve(x, kernel)


@tf.function(jit_compile=True, autograph=False)
def _xla_depthwise_conv2d(x, kernel, strides, padding, dilations):
    return tf.raw_ops.DepthwiseConv2dNative(
        input=x, filter=kernel, strides=strides, padding=padding, dilations=dilations
    )


def _reference_gradient(convolve, x, kernel, padding, dilations, upstream, **kwargs):
    """The gradient of `convolve` (a dilated conv computed by space-to-batch) at
    (x, kernel). The strides are 1: TensorFlow's dilated ops take no other, nor do
    Keras's dilated layers. A kernel axis of length 1 takes no dilation, which
    spares space-to-batch the rows of a 1D conv."""
    dilations = [1 if size == 1 else d for size, d in zip(kernel.shape[:2], dilations)]
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        reference = convolve(x, kernel, padding=padding, dilations=dilations, **kwargs)
    return tape.gradient(reference, [x, kernel], output_gradients=upstream)


_wrapper.register_call_override(runs_convolution_itself, convolution_call)
