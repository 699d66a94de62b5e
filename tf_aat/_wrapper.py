"""`CompressionWrapper`: runs a Keras layer on masked (and quantized) weights."""

import keras
from keras import ops

from tf_aat._layer_types import SEPARABLE

# (applies(wrapper) -> bool, call(wrapper, inputs, training) -> outputs): algorithms
# that must compute a layer themselves (QAT's TFLite-shaped convolutions).
_CALL_OVERRIDES = []


# (correction(wrapper, training) -> per-channel tensor or None): algorithms that
# move the layer's bias where the deployed op's bias differs from the float one
# (QAT's bias on TFLite's int32 grid, `tf_aat/quantization/_bias.py`).
_BIAS_CORRECTIONS = []


def register_bias_correction(correction):
    """Lets an algorithm add `correction(wrapper, training)` to the wrapped layer's bias."""
    if correction not in _BIAS_CORRECTIONS:
        _BIAS_CORRECTIONS.append(correction)


def register_call_override(applies, call):
    """Lets an algorithm compute the wrapped layer itself where `applies(wrapper)`."""
    if (applies, call) not in _CALL_OVERRIDES:
        _CALL_OVERRIDES.append((applies, call))


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
    convolutions, which quantization computes itself in the form the TFLite
    converter maps to int8 ops (`tf_aat/quantization/_convolution.py`).

    Args:
        layer: the Keras layer to wrap.
        masked_weights: dict from a weight attribute name of `layer` (for
            example `"kernel"`) to the axis that holds its channels.
        weight_quantizers: optional dict from a weight attribute name to a
            Keras layer that fake-quantizes that weight.
        weight_transforms: optional dict from a weight attribute name to a
            list of Keras layers, each called on the weight's value in the
            forward pass, in order, after the channel mask and before the
            weight quantizer (sparsity's element masks). Each is built with
            the weight's shape.
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
        weight_transforms=None,
        **kwargs,
    ):
        super().__init__(layer, **kwargs)
        self.masked_weights = dict(masked_weights or {})
        self.weight_transforms = {
            name: list(transforms) for name, transforms in (weight_transforms or {}).items()
        }
        for name, transforms in self.weight_transforms.items():
            for transform in transforms:
                if not isinstance(transform, keras.layers.Layer):
                    raise ValueError(
                        "Expected each weight transform to be a Keras layer. "
                        f"Received: weight_transforms[{name!r}] holding {transform!r}"
                    )
        # Keras 3.12 and older save a layer held in a list inside a dict (as above) with
        # its initial values; a flat list keeps the transforms' state in `.keras` files
        # on every Keras 3. Private attributes are saved last, so newer Keras still saves
        # them under `weight_transforms` and file layouts do not change.
        self._transform_layers = [t for ts in self.weight_transforms.values() for t in ts]
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
        """The length of the channel mask (the masked axis of the first masked weight), or None without masked weights."""
        if not self.masked_weights:
            return None
        name, axis = next(iter(self.masked_weights.items()))
        return getattr(self.layer, name).shape[axis]

    def build(self, input_shape=None):
        """Builds the wrapped layer, the channel `mask` (ones) and the transforms and quantizers.

        Raises:
            ValueError: a weight named in `masked_weights`, `weight_quantizers`
                or `weight_transforms` does not exist on the layer.
        """
        if not self.layer.built:
            self.layer.build(input_shape)
        for name in [*self.masked_weights, *self.weight_quantizers, *self.weight_transforms]:
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
        for name, transforms in self.weight_transforms.items():
            for transform in transforms:
                if not transform.built:
                    transform.build(tuple(getattr(self.layer, name).shape))
        for name, quantizer in self.weight_quantizers.items():
            if not quantizer.built:
                quantizer.build(tuple(getattr(self.layer, name).shape))
        if self.intermediate_quantizer is not None and not self.intermediate_quantizer.built:
            self.intermediate_quantizer.build(None)
        self.built = True

    def compressed_weight(self, name):
        """The value `name` takes in the forward pass: masked, transformed, then quantized."""
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
        for transform in self.weight_transforms.get(name, ()):
            value = transform(value)
        return value

    def call(self, inputs, training=None, **kwargs):
        """Calls the wrapped layer with its compressed weights in place of the float ones.

        The float variables are not changed; state the layer updates itself
        (BatchNormalization's moving statistics) is written back.

        Args:
            inputs: the layer's inputs.
            training: passed on to a layer whose `call` takes it.
            **kwargs: passed on to the layer.

        Returns:
            The wrapped layer's outputs.
        """
        for applies, override in _CALL_OVERRIDES:
            if applies(self):
                return override(self, inputs, training)
        return self.call_layer(inputs, training=training, **kwargs)

    def call_layer(self, inputs, training=None, **kwargs):
        """Runs the wrapped layer's own `call` on the compressed weights (what `call`
        does where no algorithm computes the layer itself); a call override may
        start from it.

        Args:
            inputs: the layer's inputs.
            training: passed on to a layer whose `call` takes it.
            **kwargs: passed on to the layer.

        Returns:
            The wrapped layer's outputs.
        """
        names = dict.fromkeys(
            [*self.masked_weights, *self.weight_transforms, *self.weight_quantizers]
        )
        correction = self._bias_correction(training)
        has_bias = getattr(self.layer, "use_bias", False) and correction is not None
        if has_bias:
            names["bias"] = None
        mapping = [(getattr(self.layer, n), self.compressed_weight(n)) for n in names]
        if has_bias:
            variable, value = mapping[-1]
            mapping[-1] = (variable, value + ops.cast(correction, value.dtype))
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
                variable.assign(_replica_mean(value))
        if correction is not None and not has_bias:
            outputs = outputs + ops.cast(correction, outputs.dtype)
        return outputs

    def _bias_correction(self, training):
        """The sum of the registered bias corrections (None: none applies)."""
        total = None
        for correction in _BIAS_CORRECTIONS:
            value = correction(self, training)
            if value is not None:
                total = value if total is None else total + value
        return total

    @staticmethod
    def _call_has_training_arg_of(layer):
        return bool(getattr(layer, "_call_has_training_arg", False))

    def compute_output_shape(self, input_shape):
        """The wrapped layer's output shape (compression does not change it)."""
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, *args, **kwargs):
        """The wrapped layer's output spec."""
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        """The wrapped layer's config plus the masked weights, quantizers and transforms (serialized)."""
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
        if self.weight_transforms:
            config["weight_transforms"] = {
                name: [keras.saving.serialize_keras_object(t) for t in transforms]
                for name, transforms in self.weight_transforms.items()
            }
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds a wrapper from `get_config()`'s output (the wrapped layer and quantizers included)."""
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
        config["weight_transforms"] = {
            name: [
                keras.saving.deserialize_keras_object(t, custom_objects=custom_objects)
                for t in transforms
            ]
            for name, transforms in (config.get("weight_transforms") or {}).items()
        }
        return cls(**config)


def _replica_mean(value):
    """`value` averaged over the replicas of a `tf.distribute` strategy (else as it is).

    The wrapped layer's own state updates (BatchNormalization's moving mean and
    variance, created by Keras without aggregation) would otherwise keep each
    replica's own statistics, and replicas would drift apart.
    """
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    if not tf.as_dtype(value.dtype).is_floating:  # a counter: the same on every replica
        return value
    return context.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def bake_weight_transforms(model, selects):
    """A copy of `model` where the weight transforms `selects(transform)` picks are
    applied to the weights for good and removed (sparsity's zeros baked in at strip).

    A wrapper left with no mask, transform or quantizer becomes its plain layer.
    """
    from tf_aat import _graph
    from tf_aat._copying import layer_from_config

    selected = any(
        selects(t)
        for layer in _graph.leaf_layers(model)
        if isinstance(layer, CompressionWrapper)
        for transforms in layer.weight_transforms.values()
        for t in transforms
    )
    if not selected:
        return model  # nothing of this kind to bake in
    pending = []

    def replace(layer):
        if not isinstance(layer, CompressionWrapper):
            new = layer_from_config(layer)
            pending.append((new, layer.get_weights(), {}))
            return new
        baked = {}
        kept = {}
        for name, transforms in layer.weight_transforms.items():
            chosen = [t for t in transforms if selects(t)]
            if chosen:
                value = ops.convert_to_tensor(getattr(layer.layer, name))
                for transform in chosen:
                    value = transform(value)
                baked[name] = ops.convert_to_numpy(value)
            rest = [t for t in transforms if not selects(t)]
            if rest:
                shape = tuple(getattr(layer.layer, name).shape)
                kept[name] = [copy_built(t, shape) for t in rest]
        inner = layer_from_config(layer.layer)
        pending.append((inner, layer.layer.get_weights(), baked))
        if not (layer.masked_weights or kept or layer.weight_quantizers):
            return inner
        wrapper = CompressionWrapper(
            inner,
            masked_weights=layer.masked_weights or None,
            weight_quantizers={n: copy_built(q) for n, q in layer.weight_quantizers.items()},
            intermediate_quantizer=(
                None
                if layer.intermediate_quantizer is None
                else copy_built(layer.intermediate_quantizer)
            ),
            weight_transforms=kept,
            name=layer.name,
        )
        if layer.mask is not None:
            pending.append((wrapper, None, {"mask": ops.convert_to_numpy(layer.mask)}))
        return wrapper

    result = _graph.rebuild(model, replace)
    for layer, weights, overrides in pending:
        if weights is not None:
            layer.set_weights(weights)
        for attribute, value in overrides.items():
            getattr(layer, attribute).assign(value)
    return result


def copy_built(layer, shape=None):
    """A built copy of a small state-holding layer (a quantizer or transform) with its values."""
    copy = type(layer).from_config(layer.get_config())
    copy.build(shape)
    copy.set_weights(layer.get_weights())
    return copy
