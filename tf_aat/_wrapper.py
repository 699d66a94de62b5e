"""`CompressionWrapper`: runs a Keras layer on masked (and quantized) weights."""

import keras
import tensorflow as tf
from keras import ops

from tf_aat._layer_types import CONVOLUTIONS_1D, DEPTHWISE, SEPARABLE


@keras.saving.register_keras_serializable(package="tf_aat")
class CompressionWrapper(keras.layers.Wrapper):
    """Calls `layer` with some of its weights replaced by compressed values.

    Pruned channels are zeroed by a non-trainable `mask` variable that
    multiplies each weight in `masked_weights` along its channel axis; the
    weights themselves are kept, so lowering the pruning rate brings filters
    back with their trained values. Weight quantizers, when present, fake-
    quantize the masked weights. The layer's own code runs unchanged: the
    substitution uses `keras.StatelessScope`, and updates the layer makes to
    its own state (BatchNormalization's moving statistics) are applied after
    the call. The exceptions are quantized separable, 1D and dilated
    convolutions, which the wrapper computes itself in the form the TFLite
    converter maps to int8 ops (`_convolution_call`).

    Args:
        layer: the Keras layer to wrap.
        masked_weights: dict from a weight attribute name of `layer` (for
            example `"kernel"`) to the axis that holds its channels.
        weight_quantizers: optional dict from a weight attribute name to a
            Keras layer that fake-quantizes that weight.
        intermediate_quantizer: optional Keras layer for a separable
            convolution: it fake-quantizes the depthwise result before the
            pointwise convolution, the int8 tensor TFLite keeps between its
            DEPTHWISE_CONV_2D and CONV_2D ops.

    Example:

    ```python
    conv = keras.layers.Conv2D(8, 3)
    wrapped = tf_aat.CompressionWrapper(conv, masked_weights={"kernel": -1, "bias": 0})
    y = wrapped(np.zeros((1, 5, 5, 3), "float32"))
    wrapped.mask.assign(np.array([1, 0, 1, 1, 1, 1, 1, 1], "float32"))
    ```
    """

    def __init__(
        self,
        layer,
        masked_weights=None,
        weight_quantizers=None,
        intermediate_quantizer=None,
        **kwargs,
    ):
        super().__init__(layer, **kwargs)
        self.masked_weights = dict(masked_weights or {})
        self.weight_quantizers = dict(weight_quantizers or {})
        for name, quantizer in self.weight_quantizers.items():
            if not isinstance(quantizer, keras.layers.Layer):
                raise ValueError(
                    "Expected each weight quantizer to be a Keras layer. "
                    f"Received: weight_quantizers[{name!r}]={quantizer!r}"
                )
        if intermediate_quantizer is not None and not isinstance(layer, SEPARABLE):
            raise ValueError(
                "Expected a SeparableConv1D or SeparableConv2D layer with an "
                f"`intermediate_quantizer`. Received: {type(layer).__name__} {layer.name!r}; "
                "pass intermediate_quantizer=None for other layers."
            )
        self.intermediate_quantizer = intermediate_quantizer
        self.mask = None

    @property
    def num_channels(self):
        if not self.masked_weights:
            return None
        name, axis = next(iter(self.masked_weights.items()))
        return getattr(self.layer, name).shape[axis]

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        for name in list(self.masked_weights) + list(self.weight_quantizers):
            if getattr(self.layer, name, None) is None:
                raise ValueError(
                    f"Layer {self.layer.name!r} ({type(self.layer).__name__}) has no weight "
                    f"named {name!r} to compress. Received: weight name={name!r}"
                )
        if self.masked_weights:
            self.mask = self.add_weight(
                name="mask",
                shape=(self.num_channels,),
                initializer="ones",
                trainable=False,
            )
        for name, quantizer in self.weight_quantizers.items():
            if not quantizer.built:
                quantizer.build(tuple(getattr(self.layer, name).shape))
        if self.intermediate_quantizer is not None and not self.intermediate_quantizer.built:
            self.intermediate_quantizer.build(None)
        self.built = True

    def compressed_weight(self, name):
        """The value `name` takes in the forward pass: masked, then quantized."""
        value = self._masked_weight(name)
        if name in self.weight_quantizers:
            value = self.weight_quantizers[name](value)
        return value

    def _masked_weight(self, name):
        value = ops.convert_to_tensor(getattr(self.layer, name))
        if name in self.masked_weights:
            axis = self.masked_weights[name] % len(value.shape)
            shape = [1] * len(value.shape)
            shape[axis] = -1
            value = value * ops.cast(ops.reshape(self.mask, shape), value.dtype)
        return value

    def call(self, inputs, training=None, **kwargs):
        if self._runs_convolution_itself():
            return self._convolution_call(inputs, training)
        names = dict.fromkeys([*self.masked_weights, *self.weight_quantizers])
        mapping = [(getattr(self.layer, n), self.compressed_weight(n)) for n in names]
        if self._call_has_training_arg_of(self.layer):
            kwargs["training"] = training
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = self.layer(inputs, **kwargs)
        # Write back what the layer itself updated (BN moving statistics), never
        # the compressed values mapped in: a frozen (`trainable=False`) kernel is
        # a non-trainable variable too, and must keep its float values.
        mapped = {id(variable) for variable, _ in mapping}
        for variable in self.layer.non_trainable_variables:
            if id(variable) in mapped:
                continue
            value = scope.get_current_value(variable)
            if value is not None:
                variable.assign(value)
        return outputs

    def _runs_convolution_itself(self):
        if self.intermediate_quantizer is not None:
            return True
        if not self.weight_quantizers:
            return False
        if isinstance(self.layer, CONVOLUTIONS_1D):
            return True
        dilated = max(getattr(self.layer, "dilation_rate", (1,))) > 1
        return dilated and isinstance(self.layer, (keras.layers.Conv2D, DEPTHWISE))

    def _convolution_call(self, inputs, training):
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
        layer = self.layer
        one_d = len(inputs.shape) == 3
        channels_first = layer.data_format == "channels_first"
        strides, dilation, padding = layer.strides, layer.dilation_rate, layer.padding

        def kernel(name):
            value = self._masked_weight(name)
            if one_d:
                value = ops.expand_dims(value, 0)
            quantizer = self.weight_quantizers.get(name)
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
            x = self._conv(x, kernel("depthwise_kernel"), strides, padding, dilation, True)
            if self.intermediate_quantizer is not None:
                x = self.intermediate_quantizer(x, training=training)
            x = self._conv(x, kernel("pointwise_kernel"), (1, 1), "valid", (1, 1), False)
        else:
            depthwise = isinstance(layer, DEPTHWISE)
            x = self._conv(x, kernel("kernel"), strides, padding, dilation, depthwise)
        # Bias and activation before the squeeze, so the converter fuses them into the op.
        if layer.use_bias:
            bias = self._masked_weight("bias")
            shape = [1] * (len(x.shape) - 1) + [-1]
            if channels_first:
                shape = [1, -1] + [1] * (len(x.shape) - 2)
            x = x + ops.reshape(bias, shape)
        if layer.activation is not None:
            x = layer.activation(x)
        if one_d:
            x = ops.squeeze(x, axis=2 if channels_first else 1)
        return x

    def _conv(self, x, kernel, strides, padding, dilation, depthwise):
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
        channels_first = self.layer.data_format == "channels_first"
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
                data_format=self.layer.data_format,
                dilation_rate=dilation,
            )
        if depthwise:
            return _depthwise_conv2d(x, kernel, [1, *strides, 1], padding.upper(), list(dilation))
        return _conv2d(x, kernel, [1, *strides, 1], padding.upper(), list(dilation))

    @staticmethod
    def _call_has_training_arg_of(layer):
        return bool(getattr(layer, "_call_has_training_arg", False))

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["masked_weights"] = dict(self.masked_weights)
        config["weight_quantizers"] = {
            name: keras.saving.serialize_keras_object(q)
            for name, q in self.weight_quantizers.items()
        }
        if self.intermediate_quantizer is not None:
            config["intermediate_quantizer"] = keras.saving.serialize_keras_object(
                self.intermediate_quantizer
            )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(
            config["layer"], custom_objects=custom_objects
        )
        config["weight_quantizers"] = {
            name: keras.saving.deserialize_keras_object(q, custom_objects=custom_objects)
            for name, q in (config.get("weight_quantizers") or {}).items()
        }
        if config.get("intermediate_quantizer") is not None:
            config["intermediate_quantizer"] = keras.saving.deserialize_keras_object(
                config["intermediate_quantizer"], custom_objects=custom_objects
            )
        return cls(**config)


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
