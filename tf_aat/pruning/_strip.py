"""`strip_model`: a plain Keras model with the pruned filters physically removed."""

import keras
import numpy as np

from tf_aat import _graph
from tf_aat import _layer_rules as rules
from tf_aat._copying import layer_from_config
from tf_aat._layer_rules import unwrap
from tf_aat._wrapper import CompressionWrapper, copy_built
from tf_aat.pruning import _masks
from tf_aat.pruning._channels import analyze
from tf_aat.pruning._input_mask import InputChannelMask
from tf_aat.pruning._params import FilterPruningParams


def strip_model(model):
    """Returns `model` without compression wrappers and without its pruned filters.

    Works on any model made by `tf_aat.create_compressed_model`, also after a
    `.keras` save and load: the masks are read from the model itself. Pruned
    filters are removed from their convolution, from the BatchNormalization and
    depthwise layers that carry them, and from the inputs of their consumers;
    a non-zero value of pruned channels (after e.g. a sigmoid) is folded into
    the consumer's bias. Weight quantizers stay, sliced to the kept channels.
    The outputs equal those of `model` up to float rounding.
    """
    # Permissive settings: which channels go is decided by the masks alone.
    params = FilterPruningParams(prune_first_conv=True, prune_downsample_convs=True)
    analysis = analyze(model, params)
    keep = {}
    for group in analysis.groups:
        if not group.prunable:
            continue
        for unit in group.units:
            mask = getattr(unit.layer, "mask", None)
            if mask is not None:
                keep[id(unit.layer)] = keras.ops.convert_to_numpy(mask) > 0.5
    uses = {}
    for use in analysis.uses:
        uses.setdefault(id(use.layer), {})[use.kind] = use
    pending = []

    def replace(layer):
        others = {
            name: [t for t in transforms if not isinstance(t, InputChannelMask)]
            for name, transforms in getattr(layer, "weight_transforms", {}).items()
        }
        if isinstance(layer, CompressionWrapper) and any(others.values()):
            raise ValueError(
                f"Layer {layer.name!r} still has weight transforms "
                f"({sorted(layer.weight_transforms)}), which filter pruning's strip cannot "
                "slice. Call `tf_aat.strip_model(model)`, which bakes them in first."
            )
        kinds = uses.get(id(layer), {})
        base = unwrap(layer)
        rule = rules.rule_for(base)
        config = base.get_config()
        keep_out = keep.get(id(layer)) if "producer" in kinds else None
        keep_in = zero = None
        if "consumer" in kinds:
            keep_in = _masks.keep_vector(kinds["consumer"].channels, keep)
            zero = _masks.zero_vector(kinds["consumer"].channels)
        if "passthrough" in kinds:
            keep_in = _masks.keep_vector(kinds["passthrough"].channels, keep)
        values, config = _slice(base, rule, config, keep_in, keep_out, zero, kinds)
        new = layer_from_config(base, config)
        pending.append((base, new, values))
        if isinstance(layer, CompressionWrapper) and layer.weight_quantizers:
            channels = (
                keep_out if keep_out is not None else (keep_in if "passthrough" in kinds else None)
            )
            quantizers = {
                name: _slice_quantizer(q, channels) for name, q in layer.weight_quantizers.items()
            }
            intermediate = layer.intermediate_quantizer
            return CompressionWrapper(
                new,
                weight_quantizers=quantizers,
                intermediate_quantizer=(
                    None if intermediate is None else _slice_quantizer(intermediate, None)
                ),
                name=layer.name,
            )
        return new

    stripped = _graph.rebuild(model, replace)
    for base, new, values in pending:
        _assign(base, new, values)
    return stripped


def _assign(old, new, values):
    """Copies weights into the rebuilt layer: the sliced ones by attribute, the rest by
    position (unnamed weights get new unique names, so names do not match), or by name
    where folding gave the new layer a bias the old one did not have."""
    done = set()
    for attribute, value in values.items():
        variable = getattr(new, attribute)
        variable.assign(value)
        done.add(id(variable))
    if len(new.weights) == len(old.weights):
        pairs = zip(new.weights, old.weights)
    else:
        old_by_name = {w.name: w for w in old.weights}
        pairs = ((w, old_by_name.get(w.name)) for w in new.weights)
    for variable, source in pairs:
        if id(variable) not in done and source is not None:
            variable.assign(keras.ops.convert_to_numpy(source))


def _slice_quantizer(quantizer, keep):
    if keep is not None and hasattr(quantizer, "slice_channels"):
        return quantizer.slice_channels(keep)
    return copy_built(quantizer)


def _take(value, axis, keep):
    """`value` with the kept entries along `axis`; an axis with k entries per channel
    (a separable conv's pointwise input) keeps each channel's k entries."""
    length = value.shape[axis]
    if length != len(keep):
        if len(keep) == 0 or length % len(keep):
            raise ValueError(
                f"Cannot slice an axis of {length} entries with {len(keep)} channel flags; "
                "the layer rule's weight axes do not match the layer's weights."
            )
        keep = np.repeat(keep, length // len(keep))
    return np.compress(keep, value, axis=axis)


def _numpy(layer, attribute):
    return keras.ops.convert_to_numpy(getattr(layer, attribute))


def _slice(layer, rule, config, keep_in, keep_out, zero, kinds):
    """Sliced weights of `layer` (by attribute name) and its new config, from its rule."""
    values = {}
    if not kinds:
        return values, config
    if "passthrough" in kinds and keep_in is not None:
        for attribute, axis in rule.weights("channel_weights", layer).items():
            values[attribute] = _take(_numpy(layer, attribute), axis, keep_in)
        if rule.resize_config is not None:
            config = rule.resize_config(config, int(keep_in.sum()))
        return values, config
    if "consumer" in kinds and keep_in is not None:
        inputs = rule.weights("input_weights", layer)
        dropped = ~keep_in
        if zero is not None and np.any(zero[dropped] != 0.0) and "kernel" in inputs:
            # Pruned inputs hold a constant: its contribution moves into the bias.
            kernel = _numpy(layer, "kernel")
            spatial = tuple(range(kernel.ndim - 2))
            summed = kernel.sum(axis=spatial) if spatial else kernel
            fold = zero[dropped].astype(kernel.dtype) @ summed[dropped]
            bias = getattr(layer, "bias", None)
            if bias is None:
                config["use_bias"] = True
                values["bias"] = fold
            else:
                values["bias"] = keras.ops.convert_to_numpy(bias) + fold
        for attribute, axis in inputs.items():
            values[attribute] = _take(_numpy(layer, attribute), axis, keep_in)
    if keep_out is not None:
        filter_weights = rule.weights("filter_weights", layer)
        for attribute, axis in filter_weights.items():
            value = values.get(attribute)
            value = _numpy(layer, attribute) if value is None else value
            values[attribute] = _take(value, axis, keep_out)
        if "bias" in values and getattr(layer, "bias", None) is None:
            values["bias"] = values["bias"][keep_out]  # the bias made by folding above
        if rule.filters_config_key is not None:
            config[rule.filters_config_key] = int(keep_out.sum())
    return values, config
