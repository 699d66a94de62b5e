"""Which filters can be removed together: channel groups from the layer graph.

Every prunable convolution is a *unit* of filters. A tensor's channels are a
list of segments, each coming from one unit (or from nothing prunable). Units
whose channels meet in an element-wise merge must share one mask, so they are
joined into a *group* (union-find). A consumer the analysis cannot follow
blocks the groups of its input channels; blocked groups are reported, never
pruned.
"""

import dataclasses
import fnmatch
import math
import re

import keras
import numpy as np

from tf_aat import _graph
from tf_aat import _layer_types as lt

PRODUCERS = (*lt.CONVOLUTIONS, *lt.SEPARABLE)
_TRANSPOSED = lt.TRANSPOSED
_DEPTHWISE = lt.DEPTHWISE
_MERGES = {
    keras.layers.Add: "add",
    keras.layers.Subtract: "subtract",
    keras.layers.Multiply: "multiply",
    keras.layers.Average: "average",
    keras.layers.Maximum: "maximum",
    keras.layers.Minimum: "minimum",
}
_POOLING = (*lt.MAX_POOLING, *lt.AVERAGE_POOLING)
_GLOBAL_POOLING = (*lt.GLOBAL_MAX_POOLING, *lt.GLOBAL_AVERAGE_POOLING)
_IDENTITY_LIKE = lt.IDENTITY_LIKE
_SPATIAL = (*lt.ZERO_PADDING, *lt.CROPPING, *lt.UPSAMPLING)
_ACTIVATIONS = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Activation,
)
_NON_ELEMENTWISE_ACTIVATIONS = ("softmax", "log_softmax")

# Layers that keep channels and map 0 to 0 (other modules add theirs here,
# e.g. activation fake-quantizers).
PASSTHROUGH_TYPES = []


def unwrap(layer):
    """The layer inside a `CompressionWrapper`, or `layer` itself."""
    from tf_aat._wrapper import CompressionWrapper

    return layer.layer if isinstance(layer, CompressionWrapper) else layer


@dataclasses.dataclass
class Segment:
    """`length` channels from `unit` (None: not prunable) whose pruned value is `zero`."""

    unit: object
    length: int
    zero: float = 0.0


@dataclasses.dataclass
class Channels:
    """Channel layout of a tensor; `repeat` > 1 after a Flatten (channels innermost)."""

    segments: list
    repeat: int = 1
    from_input: bool = False

    @property
    def width(self):
        return sum(s.length for s in self.segments)


@dataclasses.dataclass
class Unit:
    """The filters of one producer layer."""

    layer: object
    filters: int
    name: str
    reasons: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Group:
    """Units that share one mask; `score_layers` rank its filters together."""

    units: list
    reasons: list

    @property
    def prunable(self):
        return not self.reasons

    @property
    def filters(self):
        return self.units[0].filters

    @property
    def names(self):
        return [u.name for u in self.units]


@dataclasses.dataclass
class MaskUse:
    """A layer whose weights follow the channels of `channels` on `axis`."""

    layer: object
    kind: str  # "producer", "passthrough" or "consumer"
    channels: Channels


@dataclasses.dataclass
class Analysis:
    graph: object
    units: dict  # id(layer) -> Unit
    groups: list
    group_of: dict  # id(unit layer) -> Group
    uses: list  # MaskUse, one per weighted layer that pruning touches
    node_channels: dict  # tensor id -> Channels
    skipped: list  # (layer name, reason) for layers left uncompressed


class _UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, key):
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def matches_scope(name, patterns):
    """NNCF scopes: `{re}pattern` is a regular expression, others are globs or names."""
    for pattern in patterns:
        if pattern.startswith("{re}"):
            if re.fullmatch(pattern[4:], name):
                return True
        elif fnmatch.fnmatchcase(name, pattern) or name == pattern:
            return True
    return False


def _activation_of(layer):
    if isinstance(layer, keras.layers.Activation):
        return layer.activation
    return getattr(layer, "activation", None)


def _activation_name(activation):
    return getattr(activation, "__name__", str(activation))


def zero_image(function, value):
    """What an element-wise function makes of the constant `value`."""
    if function is None:
        return value
    out = keras.ops.convert_to_numpy(function(np.full((1, 1), value, "float32")))
    return float(out.reshape(-1)[0])


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def analyze(model, params):
    """Follows channels through `model` and returns its prunable groups."""
    graph = _graph.flatten(model)
    calls = graph.calls_per_layer()
    uf = _UnionFind()
    units = {}
    uses = []
    skipped = []
    channels_of = {}
    for tensor in graph.inputs:
        channels_of[tensor] = None  # filled lazily from shape

    def block(channels, reason):
        if channels is None:
            return
        for segment in channels.segments:
            if segment.unit is not None:
                units[segment.unit].reasons.append(reason)

    def fixed(shape, from_input=False):
        width = shape[-1] if shape and shape[-1] is not None else 0
        return Channels([Segment(None, int(width))], from_input=from_input)

    def get(tensor, shape):
        channels = channels_of.get(tensor)
        if channels is None:
            channels = fixed(shape, from_input=tensor in graph.inputs)
            channels_of[tensor] = channels
        return channels

    for node in graph.nodes:
        # Type checks look through compression wrappers; ids stay the graph's own.
        layer = unwrap(node.layer)
        inputs = [get(t, s) for t, s in zip(node.inputs, node.input_shapes)]
        out_shape = node.output_shapes[0] if node.output_shapes else ()
        name = layer.name
        shared = calls.get(id(layer), 0) > 1
        out = None

        if isinstance(layer, PRODUCERS) and len(inputs) == 1:
            source = inputs[0]
            ok_format = _channels_last(layer) and getattr(layer, "groups", 1) == 1
            if not ok_format or shared or source.repeat != 1:
                block(source, f"consumed by {name}, which is shared or not channels_last")
                skipped.append((name, "shared layer, grouped conv or channels_first"))
                out = fixed(out_shape)
            else:
                _check_const_fold(layer, source, block)
                uses.append(MaskUse(node.layer, "consumer", source))
                unit = Unit(node.layer, int(out_shape[-1]), name)
                units[id(node.layer)] = unit
                uf.find(id(node.layer))
                uses.append(MaskUse(node.layer, "producer", None))
                unit.reasons.extend(_unit_reasons(layer, source, params))
                zero = zero_image(_activation_of(layer), 0.0)
                out = Channels([Segment(id(node.layer), unit.filters, zero)])
        elif isinstance(layer, _DEPTHWISE) and len(inputs) == 1:
            source = inputs[0]
            if (
                layer.depth_multiplier != 1
                or not _channels_last(layer)
                or shared
                or any(s.zero != 0.0 for s in source.segments)
            ):
                block(source, f"consumed by {name}, a depthwise conv tf_aat cannot follow")
                out = fixed(out_shape)
            else:
                uses.append(MaskUse(node.layer, "passthrough", source))
                zero = zero_image(_activation_of(layer), 0.0)
                out = Channels(
                    [Segment(s.unit, s.length, zero) for s in source.segments],
                    from_input=source.from_input,
                )
        elif isinstance(layer, keras.layers.BatchNormalization) and len(inputs) == 1:
            source = inputs[0]
            axis = layer.axis if isinstance(layer.axis, int) else layer.axis[-1]
            rank = len(node.input_shapes[0])
            if axis % rank != rank - 1 or shared or source.repeat != 1:
                block(source, f"consumed by {name}, a BatchNormalization not on the last axis")
                out = fixed(out_shape)
            elif not layer.scale and any(s.zero != 0.0 for s in source.segments):
                block(source, f"{name} has no gamma to mask a non-zero pruned value")
                out = fixed(out_shape)
            else:
                uses.append(MaskUse(node.layer, "passthrough", source))
                out = Channels(
                    [Segment(s.unit, s.length, 0.0) for s in source.segments],
                    from_input=source.from_input,
                )
        elif isinstance(layer, _ACTIVATIONS) and len(inputs) == 1:
            activation = (
                _activation_of(layer) if isinstance(layer, keras.layers.Activation) else layer
            )
            if (
                isinstance(layer, keras.layers.Activation)
                and _activation_name(activation) in _NON_ELEMENTWISE_ACTIVATIONS
            ):
                block(inputs[0], f"consumed by {name}, a softmax over channels")
                out = fixed(out_shape)
            else:
                out = _map_zero(inputs[0], lambda v, f=activation: zero_image(f, v))
        elif (
            isinstance(layer, (*_IDENTITY_LIKE, *_POOLING, *_GLOBAL_POOLING, *PASSTHROUGH_TYPES))
            and len(inputs) == 1
        ):
            if not _channels_last(layer):
                block(inputs[0], f"consumed by {name}, which is channels_first")
                out = fixed(out_shape)
            else:
                out = _copy(inputs[0])
        elif isinstance(layer, _SPATIAL) and len(inputs) == 1:
            source = inputs[0]
            pads = isinstance(layer, lt.ZERO_PADDING)
            if not _channels_last(layer) or (pads and any(s.zero != 0.0 for s in source.segments)):
                block(source, f"consumed by {name}, which would pad a non-zero pruned value")
                out = fixed(out_shape)
            else:
                out = _copy(source)
        elif isinstance(layer, keras.layers.Flatten) and len(inputs) == 1:
            source = inputs[0]
            shape = node.input_shapes[0]
            if not _channels_last(layer) or source.repeat != 1 or any(d is None for d in shape[1:]):
                block(source, f"consumed by {name}, a Flatten tf_aat cannot follow")
                out = fixed(out_shape)
            else:
                spatial = int(math.prod(shape[1:-1]))
                out = Channels(list(source.segments), repeat=spatial, from_input=source.from_input)
        elif type(layer) in _MERGES and len(inputs) >= 2:
            out = _merge(inputs, _MERGES[type(layer)], uf, block, name)
        elif isinstance(layer, keras.layers.Concatenate):
            rank = len(node.input_shapes[0])
            if layer.axis % rank == rank - 1 and all(c.repeat == 1 for c in inputs):
                segments = [s for c in inputs for s in c.segments]
                out = Channels(segments, from_input=any(c.from_input for c in inputs))
            else:
                for c in inputs:
                    block(c, f"consumed by {name}, a Concatenate not on the channel axis")
                out = fixed(out_shape)
        elif isinstance(layer, keras.layers.Dense) and len(inputs) == 1 and not shared:
            source = inputs[0]
            uses.append(MaskUse(node.layer, "consumer", source))
            out = fixed(out_shape)
        else:
            for c in inputs:
                block(c, f"consumed by {name} ({type(layer).__name__}), which tf_aat cannot follow")
            if isinstance(layer, _TRANSPOSED) or (
                layer.weights and not isinstance(layer, keras.layers.Dense)
            ):
                skipped.append((name, f"{type(layer).__name__} is not supported by filter pruning"))
            out = fixed(out_shape)
        for tensor in node.outputs:
            channels_of[tensor] = out

    for tensor in graph.outputs:
        block(channels_of.get(tensor), "its channels are a model output")

    for unit in units.values():
        unit.reasons = list(dict.fromkeys(unit.reasons))
    members = {}
    for key in units:
        members.setdefault(uf.find(key), []).append(units[key])
    groups = []
    group_of = {}
    for unit_list in members.values():
        reasons = [f"{u.name}: {r}" for u in unit_list for r in u.reasons]
        if len({u.filters for u in unit_list}) != 1:
            reasons.append("its convolutions have different filter counts")
        group = Group(units=unit_list, reasons=reasons)
        groups.append(group)
        for unit in unit_list:
            group_of[id(unit.layer)] = group
    return Analysis(graph, units, groups, group_of, uses, channels_of, skipped)


def _unit_reasons(layer, source, params):
    reasons = []
    if params.ignored_scopes and matches_scope(layer.name, params.ignored_scopes):
        reasons.append("matched by ignored_scopes")
    if params.target_scopes and not matches_scope(layer.name, params.target_scopes):
        reasons.append("not matched by target_scopes")
    if source.from_input and not params.prune_first_conv:
        reasons.append("first convolution (set prune_first_conv to prune it)")
    strides = layer.strides if isinstance(layer.strides, (tuple, list)) else (layer.strides,)
    if any(s > 1 for s in strides) and not params.prune_downsample_convs:
        reasons.append("downsampling convolution (set prune_downsample_convs to prune it)")
    return reasons


def _check_const_fold(layer, source, block):
    """A non-zero pruned value can be folded into the bias only if no padding sees it."""
    if all(s.zero == 0.0 for s in source.segments):
        return
    if isinstance(layer, lt.SEPARABLE):
        block(
            Channels([s for s in source.segments if s.zero != 0.0]),
            f"its pruned channels are non-zero after an activation and feed {layer.name}",
        )
        return
    kernel_size = getattr(layer, "kernel_size", (1,))
    if layer.padding != "valid" and any(k > 1 for k in kernel_size):
        block(
            Channels([s for s in source.segments if s.zero != 0.0]),
            f"its pruned channels are non-zero after an activation and {layer.name} "
            "pads its input, so they cannot be removed exactly",
        )


def _copy(channels):
    return Channels(list(channels.segments), channels.repeat, channels.from_input)


def _map_zero(channels, function):
    segments = [Segment(s.unit, s.length, function(s.zero)) for s in channels.segments]
    return Channels(segments, channels.repeat, channels.from_input)


def _combine(kind, values):
    if kind == "add":
        return float(sum(values))
    if kind == "subtract":
        return float(values[0] - values[1])
    if kind == "multiply":
        return float(np.prod(values))
    if kind == "average":
        return float(np.mean(values))
    if kind == "maximum":
        return float(max(values))
    return float(min(values))


def _merge(inputs, kind, uf, block, name):
    layouts = [[(s.length) for s in c.segments] for c in inputs]
    if any(layout != layouts[0] for layout in layouts) or any(c.repeat != 1 for c in inputs):
        for c in inputs:
            block(c, f"its channels meet unaligned channels in {name}")
        return Channels([Segment(None, inputs[0].width)])
    segments = []
    for position in range(len(layouts[0])):
        column = [c.segments[position] for c in inputs]
        zero = _combine(kind, [s.zero for s in column])
        unit_ids = [s.unit for s in column if s.unit is not None]
        if len(unit_ids) != len(column):
            for c in inputs:
                block(
                    Channels([c.segments[position]]),
                    f"it is added in {name} to channels that cannot be pruned",
                )
        for other in unit_ids[1:]:
            uf.union(unit_ids[0], other)
        unit = unit_ids[0] if unit_ids else None
        segments.append(Segment(unit, column[0].length, zero))
    return Channels(segments, from_input=any(c.from_input for c in inputs))
