"""Which filters can be removed together: channel groups from the layer graph.

Every prunable convolution is a *unit* of filters. A tensor's channels are a
list of segments, each coming from one unit (or from nothing prunable). Units
whose channels meet in an element-wise merge must share one mask, so they are
joined into a *group* (union-find). A consumer the analysis cannot follow
blocks the groups of its input channels; blocked groups are reported, never
pruned.
"""

import dataclasses
import math

import numpy as np

from tf_aat import _graph
from tf_aat import _layer_rules as rules
from tf_aat._layer_rules import unwrap
from tf_aat._scopes import matches_scope


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


def analyze(model, params):
    """Follows channels through `model` and returns its prunable groups.

    Each node's layer (or Keras operation) is looked up in the layer rules
    (`tf_aat.LayerRule`), which say how its channels flow.
    """
    graph = _graph.flatten(model)
    calls = graph.calls_per_layer()
    uf = _UnionFind()
    units = {}
    uses = []
    skipped = []
    channels_of = {}

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

    context = _Context(block, fixed, uf, units, uses, skipped)
    for node in graph.nodes:
        # Rules look through compression wrappers; ids stay the graph's own.
        layer = unwrap(node.layer)
        inputs = [get(t, s) for t, s in zip(node.inputs, node.input_shapes)]
        out_shape = node.output_shapes[0] if node.output_shapes else ()
        name = getattr(layer, "name", type(layer).__name__)
        rule = rules.rule_for(layer)
        flow = rule.flow(layer, node.input_shapes)
        reason = rule.blocked(layer, node.input_shapes, node.output_shapes)
        label = f"consumed by {name} ({rules.operation_name(layer)})"
        shared = calls.get(id(layer), 0) > 1
        weighted = bool(getattr(layer, "weights", None))
        out = None
        if reason is None and flow in ("produce", "carry", "consume", "flatten"):
            if len(inputs) != 1:
                reason = f"called on {len(inputs)} tensors"
        if reason is None and shared and weighted and flow in ("produce", "carry", "consume"):
            reason = "a layer called more than once"
        if reason is not None:
            for c in inputs:
                block(c, f"{label}, {reason}")
            if weighted and flow != "carry":
                skipped.append((name, f"not pruned: {reason}"))
            out = fixed(out_shape)
        elif flow == "produce":
            out = _produce(context, node, layer, rule, inputs[0], out_shape, params, label)
        elif flow == "carry":
            out = _carry(context, node, layer, rule, inputs[0], label)
        elif flow == "consume":
            out = _consume(context, node, layer, rule, inputs[0], out_shape, label)
        elif flow == "flatten":
            source = inputs[0]
            if source.repeat != 1:
                block(source, f"{label}, a second flattening")
                out = fixed(out_shape)
            else:
                spatial = int(math.prod(node.input_shapes[0][1:-1]))
                out = Channels(list(source.segments), repeat=spatial, from_input=source.from_input)
        elif flow == "merge":
            operands = _operands(node, inputs)
            out = _merge(operands, rule.combine, uf, block, label)
        elif flow == "concatenate":
            if all(c.repeat == 1 for c in inputs):
                segments = [s for c in inputs for s in c.segments]
                out = Channels(segments, from_input=any(c.from_input for c in inputs))
            else:
                for c in inputs:
                    block(c, f"{label}, a concatenation of flattened channels")
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


@dataclasses.dataclass
class _Context:
    block: object
    fixed: object
    uf: object
    units: dict
    uses: list
    skipped: list


def _nonzero(channels):
    return Channels([s for s in channels.segments if s.zero != 0.0])


def _produce(context, node, layer, rule, source, out_shape, params, label):
    if source.repeat != 1:
        context.block(source, f"{label}, which reads flattened channels")
        return context.fixed(out_shape)
    if any(s.zero != 0.0 for s in source.segments) and not rule.flag("folds_constant_input", layer):
        context.block(
            _nonzero(source),
            f"its pruned channels are non-zero after an activation and {layer.name} "
            "cannot fold that constant into its bias (it pads its input or has none)",
        )
    context.uses.append(MaskUse(node.layer, "consumer", source))
    unit = Unit(node.layer, int(out_shape[-1]), layer.name)
    context.units[id(node.layer)] = unit
    context.uf.find(id(node.layer))
    context.uses.append(MaskUse(node.layer, "producer", None))
    unit.reasons.extend(_unit_reasons(layer, source, params))
    zero = rule.zero_map(layer, 0.0) if rule.zero_map is not None else 0.0
    return Channels([Segment(id(node.layer), unit.filters, 0.0 if zero is None else zero)])


def _carry(context, node, layer, rule, source, label):
    if rule.flag("requires_zero_input", layer) and any(s.zero != 0.0 for s in source.segments):
        context.block(source, f"{label}, which cannot carry a non-zero pruned value")
        return context.fixed(node.output_shapes[0])
    has_weights = bool(rule.weights("channel_weights", layer)) or rule.resize_config is not None
    if has_weights and source.repeat != 1:
        context.block(source, f"{label}, whose weights cannot follow flattened channels")
        return context.fixed(node.output_shapes[0])
    if has_weights:
        context.uses.append(MaskUse(node.layer, "passthrough", source))
    segments = []
    unknown = []
    for s in source.segments:
        zero = rule.zero_map(layer, s.zero) if rule.zero_map is not None else s.zero
        if zero is None:
            if s.unit is not None:
                unknown.append(s)
            zero = 0.0
        segments.append(Segment(s.unit, s.length, zero))
    if unknown:
        context.block(
            Channels(unknown), f"{label}, which maps a pruned channel's value to an unknown one"
        )
    return Channels(segments, source.repeat, source.from_input)


def _consume(context, node, layer, rule, source, out_shape, label):
    if any(s.zero != 0.0 for s in source.segments) and not rule.flag("folds_constant_input", layer):
        context.block(_nonzero(source), f"{label}, which cannot fold a non-zero pruned value")
    if rule.weights("input_weights", layer):
        context.uses.append(MaskUse(node.layer, "consumer", source))
    return context.fixed(out_shape)


def _operands(node, inputs):
    """The merge's operands in argument order: tensors' channels, or constants."""
    by_id = dict(zip(node.inputs, inputs))
    if len(node.arguments) == 0:
        return list(inputs)
    operands = []
    for argument in node.arguments:
        if isinstance(argument, tuple) and argument in by_id:
            operands.append(by_id[argument])
        else:
            operands.append(argument)
    return operands


def _unit_reasons(layer, source, params):
    reasons = []
    if params.ignored_scopes and matches_scope(layer.name, params.ignored_scopes):
        reasons.append("matched by ignored_scopes")
    if params.target_scopes and not matches_scope(layer.name, params.target_scopes):
        reasons.append("not matched by target_scopes")
    if source.from_input and not params.prune_first_conv:
        reasons.append("first convolution (set prune_first_conv to prune it)")
    strides = getattr(layer, "strides", (1,))
    strides = strides if isinstance(strides, (tuple, list)) else (strides,)
    if any(s > 1 for s in strides) and not params.prune_downsample_convs:
        reasons.append("downsampling convolution (set prune_downsample_convs to prune it)")
    return reasons


def _constant_value(value):
    """A scalar constant operand as a float, or None for one with several values."""
    array = np.asarray(value)
    if array.dtype == object or array.size != 1:
        return None
    return float(array.reshape(-1)[0])


def _merge(operands, combine, uf, block, label):
    """An element-wise op: aligned channels are pruned together.

    Operands are channel layouts or constants. A scalar constant and a tensor
    of one channel broadcast over all channels; a pruned channel's value must
    then not depend on them (`x * gate` keeps 0 at 0, `x + gate` does not).
    """
    tensors = [o for o in operands if isinstance(o, Channels)]
    wide = [c for c in tensors if c.width != 1]
    if not wide:
        return Channels([Segment(None, tensors[0].width)]) if tensors else None
    layouts = [[s.length for s in c.segments] for c in wide]
    if any(layout != layouts[0] for layout in layouts) or any(c.repeat != 1 for c in wide):
        for c in tensors:
            block(c, f"{label}, where its channels meet unaligned channels")
        return Channels([Segment(None, wide[0].width)])
    for c in tensors:
        if c.width == 1 and len(wide) != len(tensors):
            block(c, f"{label}, where one channel is broadcast over many")
    segments = []
    for position in range(len(layouts[0])):
        column = [c.segments[position] for c in wide]
        values = []
        for operand in operands:
            if isinstance(operand, Channels):
                values.append(operand.segments[position].zero if operand.width != 1 else None)
            else:
                values.append(_constant_value(operand))
        zero = _combined_zero(combine, values)
        unit_ids = [s.unit for s in column if s.unit is not None]
        if zero is None:
            for c in wide:
                block(
                    Channels([c.segments[position]]),
                    f"{label}, where a pruned channel would take a value that varies",
                )
            zero = 0.0
        if len(unit_ids) != len(column):
            for c in wide:
                block(
                    Channels([c.segments[position]]),
                    f"{label}, where it meets channels that cannot be pruned",
                )
        for other in unit_ids[1:]:
            uf.union(unit_ids[0], other)
        unit = unit_ids[0] if unit_ids else None
        segments.append(Segment(unit, column[0].length, zero))
    return Channels(segments, from_input=any(c.from_input for c in wide))


def _combined_zero(combine, values):
    """`combine` of the pruned values; None when it depends on an unknown (None) one."""
    if all(v is not None for v in values):
        return float(combine(values))
    first = combine([1.0 if v is None else v for v in values])
    second = combine([2.0 if v is None else v for v in values])
    return float(first) if first == second else None
