"""From unit masks to per-layer keep vectors, FLOPs and parameter counts."""

import keras
import numpy as np

from tf_aat import _layer_rules as rules
from tf_aat import _statistics
from tf_aat._layer_rules import unwrap


def keep_vector(channels, unit_keep):
    """Boolean keep flags for every channel of a tensor (tiled after a Flatten)."""
    parts = []
    for segment in channels.segments:
        keep = unit_keep.get(segment.unit)
        parts.append(keep if keep is not None else np.ones(segment.length, bool))
    vector = np.concatenate(parts) if parts else np.ones(0, bool)
    return np.tile(vector, channels.repeat) if channels.repeat > 1 else vector


def zero_vector(channels):
    """The value each channel takes when pruned (non-zero after e.g. a sigmoid)."""
    parts = [np.full(s.length, s.zero, np.float64) for s in channels.segments]
    vector = np.concatenate(parts) if parts else np.zeros(0)
    return np.tile(vector, channels.repeat) if channels.repeat > 1 else vector


def node_cost(layer, input_shape, output_shape, in_active=None, out_active=None):
    """(FLOPs, parameters) of one call, from the layer's rule (2 FLOPs per multiply-add).

    `in_active`/`out_active` are the channel counts left after pruning;
    None means all of them.
    """
    layer = unwrap(layer)
    return rules.rule_for(layer).layer_cost(layer, input_shape, output_shape, in_active, out_active)


def model_cost(analysis, unit_keep):
    """Per-node cost rows and totals for the given unit keep flags."""
    uses = {}
    for use in analysis.uses:
        uses.setdefault(id(use.layer), {})[use.kind] = use
    rows = []
    seen_params = set()
    for node in analysis.graph.nodes:
        layer = node.layer
        if not rules.is_layer(layer) or not unwrap(layer).weights:
            continue
        if _statistics.is_machinery(layer):
            continue  # a quantizer's range is not a parameter of the model described
        kinds = uses.get(id(layer), {})
        in_shape = node.input_shapes[0] if node.input_shapes else ()
        out_shape = node.output_shapes[0] if node.output_shapes else ()
        in_active = out_active = None
        use = kinds.get("consumer") or kinds.get("passthrough")
        channels = use.channels if use is not None else None
        if channels is not None:
            in_active = int(keep_vector(channels, unit_keep).sum())
        if "passthrough" in kinds:
            out_active = in_active
        if "producer" in kinds:
            keep = unit_keep.get(id(layer))
            out_active = int(keep.sum()) if keep is not None else None
        full = node_cost(layer, in_shape, out_shape)
        current = node_cost(layer, in_shape, out_shape, in_active, out_active)
        count_params = id(layer) not in seen_params
        seen_params.add(id(layer))
        rows.append(
            {
                "name": layer.name,
                "type": type(unwrap(layer)).__name__,
                "full_flops": full[0],
                "flops": current[0],
                "full_params": full[1] if count_params else 0,
                "params": current[1] if count_params else 0,
                "full_channels": int(out_shape[-1]) if out_shape and out_shape[-1] else 0,
                "channels": out_active
                if out_active is not None
                else (int(out_shape[-1]) if out_shape and out_shape[-1] else 0),
            }
        )
    return rows


def unit_keep_from_wrappers(analysis):
    """Reads each unit's keep flags from the `mask` of its wrapper, if it has one."""
    keep = {}
    for key, unit in analysis.units.items():
        mask = getattr(unit.layer, "mask", None)
        if mask is not None:
            keep[key] = keras.ops.convert_to_numpy(mask) > 0.5
    return keep
