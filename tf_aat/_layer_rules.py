"""Layer rules: everything compression needs to know about one kind of layer.

One registry answers, per Keras layer class (looked up through the class
hierarchy, and through a `CompressionWrapper` to the layer inside), how
channels flow through the layer, which weights hold or read channels (masked
while training, sliced at strip), which weight scores a filter, what a call
costs, which weights are quantized along which channel axes and whether
TFLite keeps the input's scale. Keras operation nodes that are not layers
(`x + y`, `keras.ops.multiply`, `keras.ops.concatenate`, ...) have rules too,
keyed by the operation's class name.

Pruning, quantization and strip read the rules; none of them tests layer
types itself. Users describe their own layers with `register_layer_rule`.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping

import keras
import numpy as np

from tf_aat import _layer_types as lt

CHANNEL_FLOWS = ("produce", "carry", "merge", "concatenate", "flatten", "consume", "block")


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How compression treats one layer class.

    Args:
        channels: how channels flow through the layer:
            `"produce"`: the output channels are new (filters of a
            convolution); they can be pruned. `"carry"`: output channel i
            comes from input channel i alone (BatchNormalization, activations,
            pooling, depthwise convolutions). `"merge"`: an element-wise op
            of several inputs with the same channels (Add, Multiply); their
            channels are pruned together. `"concatenate"`: the channels of
            the inputs one after another. `"flatten"`: channels-last
            flattening. `"consume"`: reads the input channels and produces
            channels that are not pruned (a classifier Dense).
            `"block"`: the layer cannot be followed; the channels reaching it
            are not pruned, and `statistics()` says why.
        filter_weights: for `"produce"`, `{weight name: axis}` of the weights
            that hold the output channels (e.g. `{"kernel": -1, "bias": 0}`):
            they are masked while training and sliced at strip.
        input_weights: for `"produce"` and `"consume"`, `{weight name: axis}`
            of the weights that read the input channels
            (e.g. `{"kernel": -2}`): sliced at strip. An axis that holds
            `k` entries per input channel is sliced with each flag repeated.
        channel_weights: for `"carry"`, `{weight name: axis}` of every
            per-channel weight (sliced at strip).
        masked_weights: for `"carry"`, the subset of `channel_weights`
            masked while training so that a pruned channel is exactly zero
            (BatchNormalization's gamma and beta).
        zeroed_weights: for `"carry"`, statistics the layer updates itself
            (so they cannot be masked in the forward pass) whose pruned
            entries are set to zero when the masks change: a
            BatchNormalization without gamma outputs -mean/std for a zero
            input unless its moving mean is zero (and a zero input keeps it
            zero while training).
        score_weight: for `"produce"`, the weight whose filters (along its
            `filter_weights` axis) the importance criterion scores.
        filters_config_key: for `"produce"`, the `get_config()` key that
            holds the output channel count (`"filters"`, `"units"`);
            strip writes the kept count there.
        resize_config: for `"carry"`, a function `(config, channels) -> config`
            for a layer whose config holds its channel count (a Reshape's
            `target_shape`): strip calls it with the number of kept channels.
        zero_map: for `"carry"` without masked weights, a function of
            `(layer, value)` giving what a pruned channel's constant
            `value` becomes (default: unchanged); return None when it cannot
            be known, and pruned channels are then blocked here.
        combine: for `"merge"`, a function of the inputs' pruned constants
            (a list of floats) giving the output's.
        check: a function of `(layer, input_shapes, output_shapes)` that
            returns a reason (str) to block the layer's channels, or None.
        requires_zero_input: for `"carry"`: pruned input channels must be
            exactly zero (zero padding, a depthwise conv with padding).
        folds_constant_input: for `"produce"` and `"consume"`: a function
            of `layer` telling whether a non-zero constant in pruned input
            channels can be folded into the bias at strip (True for a
            1x1 or "valid" conv and a Dense, False when padding sees it).
        cost: a function `(layer, input_shape, output_shape, in_channels,
            out_channels) -> (flops, parameters)` counting 2 FLOPs per
            multiply-add, for statistics and FLOPs targets.
        quantization: `"conv"`, `"depthwise"`, `"separable"`, `"dense"` or
            None: how int8 QAT quantizes the layer's weights (TFLite's
            CONV_2D, DEPTHWISE_CONV_2D, both, FULLY_CONNECTED).
        keeps_input_scale: TFLite's int8 kernel of the layer keeps its
            input's scale and zero point (max pooling, reshapes, padding),
            so QAT inserts no quantizer after it.

    Every weight mapping may also be a function of the layer returning the
    mapping; names of weights the layer does not have (a bias with
    `use_bias=False`) are skipped.

    Example (a user layer computing `inputs @ kernel + bias`):

    ```python
    tf_aat.register_layer_rule(
        MyPointwise,
        tf_aat.LayerRule(channels="produce",
                         filter_weights={"kernel": -1, "bias": 0},
                         input_weights={"kernel": -2},
                         score_weight="kernel",
                         filters_config_key="units"),
    )
    ```
    """

    channels: str | Callable
    filter_weights: Mapping | Callable = dataclasses.field(default_factory=dict)
    input_weights: Mapping | Callable = dataclasses.field(default_factory=dict)
    channel_weights: Mapping | Callable = dataclasses.field(default_factory=dict)
    masked_weights: Mapping | Callable = dataclasses.field(default_factory=dict)
    zeroed_weights: Mapping | Callable = dataclasses.field(default_factory=dict)
    score_weight: str | Callable | None = None
    filters_config_key: str | None = None
    resize_config: Callable | None = None
    zero_map: Callable | None = None
    combine: Callable | None = None
    check: Callable | None = None
    requires_zero_input: bool | Callable = False
    folds_constant_input: bool | Callable = False
    cost: Callable | None = None
    quantization: str | Callable | None = None
    keeps_input_scale: bool = False
    reason: str | None = None  # why a "block" rule blocks

    def __post_init__(self):
        if callable(self.channels):
            return
        if self.channels not in CHANNEL_FLOWS:
            raise ValueError(
                f"Expected `channels` to be one of {list(CHANNEL_FLOWS)}. "
                f"Received: channels={self.channels!r}"
            )
        if self.channels == "produce" and not self.filter_weights:
            raise ValueError(
                "A rule with channels='produce' needs `filter_weights`: the weights that "
                "hold the output channels, e.g. {'kernel': -1, 'bias': 0}. "
                f"Received: filter_weights={self.filter_weights!r}"
            )
        if self.channels == "merge" and self.combine is None:
            raise ValueError(
                "A rule with channels='merge' needs `combine`, a function of the inputs' "
                "pruned constants, e.g. `sum`. Received: combine=None"
            )

    # -- reading the rule for one layer ------------------------------------
    def flow(self, layer, input_shapes):
        """The channel flow for this call (`channels`, or its value for this layer)."""
        if callable(self.channels):
            return self.channels(layer, input_shapes)
        return self.channels

    def weights(self, field, layer):
        """`{name: axis}` of `field` for `layer`, without weights it does not have."""
        value = getattr(self, field)
        mapping = value(layer) if callable(value) else value
        return {name: axis for name, axis in dict(mapping).items() if _has_weight(layer, name)}

    def score_weight_of(self, layer):
        """The name of the weight whose filters FPGM scores for `layer` (`score_weight`, else the first of `filter_weights`)."""
        value = self.score_weight
        if callable(value):
            return value(layer)
        if value is not None:
            return value
        return next(iter(self.weights("filter_weights", layer)), None)

    def flag(self, field, layer):
        """The boolean field `field` (a value or a function of the layer) for `layer`."""
        value = getattr(self, field)
        return bool(value(layer) if callable(value) else value)

    def quantization_kind(self, layer):
        """How quantization treats `layer` (`quantization`, or its value for this layer)."""
        value = self.quantization
        return value(layer) if callable(value) else value

    def blocked(self, layer, input_shapes, output_shapes):
        """The reason this layer blocks its input channels, or None."""
        if self.channels == "block":
            return self.reason or "which tf_aat cannot follow"
        if self.check is None:
            return None
        return self.check(layer, input_shapes, output_shapes)

    def layer_cost(self, layer, input_shape, output_shape, in_channels=None, out_channels=None):
        """(FLOPs, parameters) of one call; channel counts default to the full ones."""
        if self.cost is None or not input_shape or input_shape[-1] is None:
            return 0, _parameter_count(layer)
        c_in = int(input_shape[-1]) if in_channels is None else int(in_channels)
        c_out = int(output_shape[-1]) if out_channels is None else int(out_channels)
        return self.cost(layer, input_shape, output_shape, c_in, c_out)


def _has_weight(layer, name):
    return getattr(layer, name, None) is not None


def _parameter_count(layer):
    return sum(int(np.prod(w.shape)) for w in getattr(layer, "weights", ()))


# ---------------------------------------------------------------- registry

_LAYER_RULES = {}  # layer class -> LayerRule
_OPERATION_RULES = {}  # Keras operation class name -> LayerRule


def register_layer_rule(layer_class, rule):
    """Tells compression how to treat `layer_class` (and its subclasses).

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        rule: a `tf_aat.LayerRule`.

    A registered rule replaces any earlier one for the same class; a
    subclass without its own rule uses its nearest registered base class's.
    Layers without any rule block the channels that reach them (reported in
    `statistics()`), so registering is how a custom layer becomes prunable.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            "Expected a Keras layer class (a subclass of keras.layers.Layer). "
            f"Received: layer_class={layer_class!r}"
        )
    if not isinstance(rule, LayerRule):
        raise TypeError(
            f"Expected a tf_aat.LayerRule. Received: rule={rule!r} of type {type(rule).__name__}"
        )
    _LAYER_RULES[layer_class] = rule


def register_operation_rule(class_name, rule):
    """Rule for Keras operation nodes (not layers) whose class is named `class_name`."""
    _OPERATION_RULES[class_name] = rule


def unwrap(layer):
    """The layer inside a `CompressionWrapper`, or `layer` itself."""
    from tf_aat._wrapper import CompressionWrapper

    return layer.layer if isinstance(layer, CompressionWrapper) else layer


def is_layer(operation):
    return isinstance(operation, keras.layers.Layer)


def operation_name(operation):
    """`keras.ops.<name>` for an operation node, the class name for a layer."""
    if is_layer(operation):
        return type(operation).__name__
    return f"keras.ops {type(operation).__name__}"


def rule_for(layer):
    """The `LayerRule` of `layer` (looked up through wrappers and base classes)."""
    layer = unwrap(layer)
    if not is_layer(layer):
        rule = _OPERATION_RULES.get(type(layer).__name__)
        if rule is not None:
            return rule
        return LayerRule("block", reason="an operation tf_aat cannot follow")
    for klass in type(layer).__mro__:
        rule = _LAYER_RULES.get(klass)
        if rule is not None:
            return rule
    weighted = bool(layer.weights)
    return LayerRule(
        "block",
        reason="which tf_aat cannot follow"
        + (" (describe it with tf_aat.register_layer_rule)" if weighted else ""),
    )


# ------------------------------------------------------------ helper logic


def channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _spatial(shape):
    dims = [d for d in shape[1:-1] if d is not None]
    return int(math.prod(dims)) if dims else 1


def _strides(layer):
    strides = getattr(layer, "strides", (1,))
    return strides if isinstance(strides, (tuple, list)) else (strides,)


def _evaluate(function, value):
    """What an element-wise function makes of the constant `value`."""
    if function is None:
        return value
    out = keras.ops.convert_to_numpy(function(np.full((1, 1), value, "float32")))
    return float(out.reshape(-1)[0])


def activation_of(layer):
    if isinstance(layer, keras.layers.Activation):
        return layer.activation
    return getattr(layer, "activation", None)


def activation_name(activation):
    return getattr(activation, "__name__", str(activation))


def _channels_last(layer, input_shapes, output_shapes):
    return None if channels_last(layer) else "which is channels_first"


def _conv_check(layer, input_shapes, output_shapes):
    if not channels_last(layer):
        return "which is channels_first"
    if getattr(layer, "groups", 1) != 1:
        return "a grouped convolution"
    return None


def _conv_folds(layer):
    kernel_size = getattr(layer, "kernel_size", (1,))
    return layer.padding == "valid" or all(k == 1 for k in kernel_size)


def _conv_cost(layer, input_shape, output_shape, c_in, c_out):
    window = int(np.prod(layer.kernel_size))
    groups = getattr(layer, "groups", 1)
    params = window * (c_in // groups) * c_out + (c_out if layer.use_bias else 0)
    return 2 * _spatial(output_shape) * window * (c_in // groups) * c_out, params


def _separable_cost(layer, input_shape, output_shape, c_in, c_out):
    window = int(np.prod(layer.kernel_size))
    mult = layer.depth_multiplier
    params = window * c_in * mult + c_in * mult * c_out + (c_out if layer.use_bias else 0)
    flops = 2 * _spatial(output_shape) * (window * c_in * mult + c_in * mult * c_out)
    return flops, params


def _depthwise_cost(layer, input_shape, output_shape, c_in, c_out):
    window = int(np.prod(layer.kernel_size))
    mult = layer.depth_multiplier
    params = window * c_in * mult + (c_in * mult if layer.use_bias else 0)
    return 2 * _spatial(output_shape) * window * c_in * mult, params


def _dense_cost(layer, input_shape, output_shape, c_in, c_out):
    rows = int(np.prod([d for d in input_shape[1:-1] if d])) if len(input_shape) > 2 else 1
    params = c_in * c_out + (c_out if layer.use_bias else 0)
    return 2 * rows * c_in * c_out, params


def _batch_norm_cost(layer, input_shape, output_shape, c_in, c_out):
    count = sum(1 for w in (layer.gamma, layer.beta) if w is not None) + 2
    return 2 * _spatial(output_shape) * c_in, count * c_in


def _dense_flow(layer, input_shapes):
    # A Dense over a feature map (rank > 2) is a 1x1 convolution, whose units
    # are filters (ConvNeXt's and transformers' MLPs); a Dense over flat
    # features is a classifier layer, which reads the channels it is given.
    return "produce" if input_shapes and len(input_shapes[0]) > 2 else "consume"


def _depthwise_check(layer, input_shapes, output_shapes):
    if not channels_last(layer):
        return "which is channels_first"
    if layer.depth_multiplier != 1:
        return "a depthwise conv with depth_multiplier > 1"
    return None


def _batch_norm_check(layer, input_shapes, output_shapes):
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[-1]
    rank = len(input_shapes[0])
    if axis % rank != rank - 1:
        return "a BatchNormalization not on the last axis"
    return None


def _batch_norm_zeroed(layer):
    return {"moving_mean": 0} if layer.gamma is None else {}


def _batch_norm_zero(layer, value):
    # Masked gamma and beta make a pruned channel exactly zero; without gamma
    # only a zero input stays zero.
    if layer.gamma is None and value != 0.0:
        return None
    return 0.0


def _activation_check(layer, input_shapes, output_shapes):
    if isinstance(layer, keras.layers.Activation) and activation_name(layer.activation) in (
        "softmax",
        "log_softmax",
    ):
        return "a softmax over channels"
    return None


def _activation_zero(layer, value):
    function = layer.activation if isinstance(layer, keras.layers.Activation) else layer
    return _evaluate(function, value)


def _activated_zero(layer, value):
    """A weighted layer with a fused activation: a masked output is activation(0)."""
    return _evaluate(activation_of(layer), 0.0)


def _concatenate_check(layer, input_shapes, output_shapes):
    rank = len(input_shapes[0])
    if layer.axis % rank != rank - 1:
        return "a Concatenate not on the channel axis"
    return None


def _flatten_check(layer, input_shapes, output_shapes):
    if not channels_last(layer) or any(d is None for d in input_shapes[0][1:]):
        return "a Flatten of unknown shape or channels_first"
    return None


def _reshape_check(layer, input_shapes, output_shapes):
    """A reshape keeps channels when the channel axis stays last and whole."""
    before, after = input_shapes[0], output_shapes[0]
    if not before or not after or before[-1] is None or before[-1] != after[-1]:
        return "which reshapes the channel axis"
    return None


def _reshape_operation_check(layer, input_shapes, output_shapes):
    reason = _reshape_check(layer, input_shapes, output_shapes)
    if reason is None and list(getattr(layer, "newshape", (-1,)))[-1] != -1:
        # The operation is reused as it is when a model is rebuilt, so a channel
        # count written into it cannot follow pruning.
        return (
            "which names the channel count in its shape (use -1 for the channels, or "
            "keras.layers.Reshape)"
        )
    return reason


def _resize_reshape(config, channels):
    shape = list(config["target_shape"])
    if shape and shape[-1] != -1:
        shape[-1] = int(channels)
    config["target_shape"] = tuple(shape)
    return config


def _product(values):
    return float(np.prod(values))


def _subtract(values):
    return float(values[0] - values[1])


def _mean(values):
    return float(np.mean(values))


_COMBINE = {
    "add": lambda values: float(sum(values)),
    "subtract": _subtract,
    "multiply": _product,
    "average": _mean,
    "maximum": lambda values: float(max(values)),
    "minimum": lambda values: float(min(values)),
}


def _producer_quantization(kind):
    def quantization(layer):
        if getattr(layer, "groups", 1) != 1:
            return None
        return kind

    return quantization


def _register_builtins():
    conv = LayerRule(
        "produce",
        filter_weights={"kernel": -1, "bias": 0},
        input_weights={"kernel": -2},
        score_weight="kernel",
        filters_config_key="filters",
        zero_map=_activated_zero,
        check=_conv_check,
        folds_constant_input=_conv_folds,
        cost=_conv_cost,
        quantization=_producer_quantization("conv"),
    )
    for klass in lt.CONVOLUTIONS:
        register_layer_rule(klass, conv)
    separable = LayerRule(
        "produce",
        filter_weights={"pointwise_kernel": -1, "bias": 0},
        input_weights={"depthwise_kernel": -2, "pointwise_kernel": -2},
        score_weight="pointwise_kernel",
        filters_config_key="filters",
        zero_map=_activated_zero,
        check=_conv_check,
        folds_constant_input=False,
        cost=_separable_cost,
        quantization="separable",
    )
    for klass in lt.SEPARABLE:
        register_layer_rule(klass, separable)
    depthwise = LayerRule(
        "carry",
        channel_weights={"kernel": -2, "bias": 0},
        masked_weights={"kernel": -2, "bias": 0},
        zero_map=_activated_zero,
        check=_depthwise_check,
        requires_zero_input=True,
        cost=_depthwise_cost,
        quantization="depthwise",
    )
    for klass in lt.DEPTHWISE:
        register_layer_rule(klass, depthwise)
    for klass in lt.TRANSPOSED:
        register_layer_rule(
            klass,
            LayerRule(
                "block",
                reason="a transposed convolution (not supported by filter pruning)",
                cost=_conv_cost,
                quantization="unsupported",
            ),
        )
    register_layer_rule(
        keras.layers.Dense,
        LayerRule(
            _dense_flow,
            filter_weights={"kernel": -1, "bias": 0},
            input_weights={"kernel": -2},
            score_weight="kernel",
            filters_config_key="units",
            zero_map=_activated_zero,
            folds_constant_input=True,
            cost=_dense_cost,
            quantization="dense",
        ),
    )
    register_layer_rule(
        keras.layers.BatchNormalization,
        LayerRule(
            "carry",
            channel_weights={"gamma": 0, "beta": 0, "moving_mean": 0, "moving_variance": 0},
            masked_weights={"gamma": 0, "beta": 0},
            zeroed_weights=_batch_norm_zeroed,
            zero_map=_batch_norm_zero,
            check=_batch_norm_check,
            cost=_batch_norm_cost,
        ),
    )
    activation = LayerRule("carry", zero_map=_activation_zero, check=_activation_check)
    for klass in (
        keras.layers.ReLU,
        keras.layers.LeakyReLU,
        keras.layers.ELU,
        keras.layers.Activation,
    ):
        register_layer_rule(klass, activation)
    register_layer_rule(
        keras.layers.Softmax,
        LayerRule("block", reason="a softmax over channels"),
    )
    same_scale = LayerRule("carry", check=_channels_last, keeps_input_scale=True)
    plain = LayerRule("carry", check=_channels_last)
    for klass in (*lt.MAX_POOLING, *lt.GLOBAL_MAX_POOLING):
        register_layer_rule(klass, same_scale)
    # TFLite's int8 AVERAGE_POOL_2D keeps its input's scale (a fake-quantizer after it
    # makes the converter leave the ops around it float); MEAN requantizes.
    for klass in lt.AVERAGE_POOLING:
        register_layer_rule(klass, same_scale)
    for klass in lt.GLOBAL_AVERAGE_POOLING:
        register_layer_rule(klass, plain)
    identity = LayerRule("carry", keeps_input_scale=True)
    for klass in lt.IDENTITY_LIKE:
        register_layer_rule(klass, identity)
    register_layer_rule(keras.layers.InputLayer, LayerRule("carry", keeps_input_scale=True))
    padding = LayerRule(
        "carry",
        check=_channels_last,
        requires_zero_input=True,
        keeps_input_scale=True,
    )
    for klass in lt.ZERO_PADDING:
        register_layer_rule(klass, padding)
    for klass in lt.CROPPING:
        register_layer_rule(klass, LayerRule("carry", check=_channels_last, keeps_input_scale=True))
    for klass in lt.UPSAMPLING:
        register_layer_rule(klass, LayerRule("carry", check=_channels_last))
    register_layer_rule(
        keras.layers.Flatten,
        LayerRule("flatten", check=_flatten_check, keeps_input_scale=True),
    )
    register_layer_rule(
        keras.layers.Reshape,
        LayerRule(
            "carry",
            check=_reshape_check,
            resize_config=_resize_reshape,
            keeps_input_scale=True,
        ),
    )
    for name in ("Permute", "RepeatVector"):
        register_layer_rule(
            getattr(keras.layers, name),
            LayerRule("block", reason="which reorders or repeats axes", keeps_input_scale=True),
        )
    register_layer_rule(
        keras.layers.Rescaling,
        LayerRule("carry", zero_map=_rescaling_zero),
    )
    register_layer_rule(
        keras.layers.Normalization,
        LayerRule("carry", zero_map=_per_channel_zero),
    )
    for name, kind in (
        ("Add", "add"),
        ("Subtract", "subtract"),
        ("Multiply", "multiply"),
        ("Average", "average"),
        ("Maximum", "maximum"),
        ("Minimum", "minimum"),
    ):
        rule = LayerRule("merge", combine=_COMBINE[kind])
        register_layer_rule(getattr(keras.layers, name), rule)
        register_operation_rule(name, rule)
    register_layer_rule(
        keras.layers.Concatenate, LayerRule("concatenate", check=_concatenate_check)
    )
    _register_operations()


def _rescaling_zero(layer, value):
    scale, offset = np.asarray(layer.scale), np.asarray(layer.offset)
    if scale.size != 1 or offset.size != 1:
        return None
    return float(value * scale.reshape(-1)[0] + offset.reshape(-1)[0])


def _per_channel_zero(layer, value):
    return None


# ------------------------------------------------------ Keras operations


def _operation_axis_check(layer, input_shapes, output_shapes):
    """`keras.ops.concatenate` must join along the channel axis."""
    rank = len(input_shapes[0])
    axis = getattr(layer, "axis", -1)
    if axis is None or axis % rank != rank - 1:
        return "not on the channel axis"
    return None


def _reduction_check(layer, input_shapes, output_shapes):
    """`keras.ops.mean(x, axis=...)` carries channels when it keeps the channel axis."""
    rank = len(input_shapes[0])
    axis = getattr(layer, "axis", None)
    if axis is None:
        return "a reduction over all axes, channels included"
    axes = [axis] if isinstance(axis, int) else list(axis)
    if any(a % rank == rank - 1 for a in axes):
        return "a reduction over the channel axis"
    if not getattr(layer, "keepdims", False) and len(output_shapes[0]) != rank - len(axes):
        return "a reduction with an unexpected output shape"
    return None


def _transpose_check(layer, input_shapes, output_shapes):
    rank = len(input_shapes[0])
    axes = getattr(layer, "axes", None)
    if axes is None:
        return "a transpose that reverses the axes, channels included"
    if list(axes)[-1] % rank != rank - 1 or list(axes)[0] % rank != 0:
        return "a transpose that moves the channel axis"
    return None


def _operation_zero(layer, value):
    """An element-wise `keras.ops` function applied to the constant `value`."""
    try:
        return _evaluate(layer, value)
    except Exception:  # noqa: BLE001 - an op we cannot evaluate on a constant blocks
        return None


def _register_operations():
    register_operation_rule("Concatenate", LayerRule("concatenate", check=_operation_axis_check))
    for name in ("Mean", "Max", "Min", "Sum"):
        register_operation_rule(
            name,
            LayerRule(
                "carry",
                check=_reduction_check,
                zero_map=_reduction_zero(name),
                keeps_input_scale=name in ("Max", "Min"),
            ),
        )
    register_operation_rule(
        "Reshape",
        LayerRule("carry", check=_reshape_operation_check, keeps_input_scale=True),
    )
    register_operation_rule(
        "Transpose", LayerRule("carry", check=_transpose_check, keeps_input_scale=True)
    )
    register_operation_rule("Identity", LayerRule("carry", keeps_input_scale=True))
    elementwise = LayerRule("carry", zero_map=_operation_zero)
    for name in (
        "Relu",
        "Relu6",
        "Sigmoid",
        "HardSigmoid",
        "Silu",
        "HardSilu",
        "Gelu",
        "Elu",
        "Selu",
        "LeakyRelu",
        "Softplus",
        "Softsign",
        "Tanh",
        "Abs",
        "Square",
        "Sqrt",
        "Exp",
        "Negative",
        "Clip",
        "Cast",
    ):
        register_operation_rule(name, elementwise)
    register_operation_rule(
        "Softmax", LayerRule("block", reason="keras.ops softmax (over channels)")
    )
    register_operation_rule("Split", LayerRule("block", reason="which splits channels"))


def _reduction_zero(name):
    def zero(layer, value):
        # Mean, max and min of a constant are that constant; a sum scales it.
        if name != "Sum":
            return value
        return None if value != 0.0 else 0.0

    return zero


_register_builtins()
