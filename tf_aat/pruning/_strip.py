"""`strip_model`: a plain Keras model with the pruned filters physically removed."""

import keras
import numpy as np

from tf_aat import _graph
from tf_aat import _layer_types as lt
from tf_aat._wrapper import CompressionWrapper
from tf_aat.pruning import _masks
from tf_aat.pruning._channels import analyze, unwrap
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
        kinds = uses.get(id(layer), {})
        base = unwrap(layer)
        values = {w.name: keras.ops.convert_to_numpy(w) for w in base.weights}
        config = base.get_config()
        keep_out = keep.get(id(layer)) if "producer" in kinds else None
        keep_in = zero = None
        if "consumer" in kinds:
            keep_in = _masks.keep_vector(kinds["consumer"].channels, keep)
            zero = _masks.zero_vector(kinds["consumer"].channels)
        if "passthrough" in kinds:
            keep_in = _masks.keep_vector(kinds["passthrough"].channels, keep)
        values, config = _slice(base, values, config, keep_in, keep_out, zero, kinds)
        new = type(base).from_config(config)
        pending.append((new, values))
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
    for layer, values in pending:
        for variable in layer.weights:
            if variable.name in values:
                variable.assign(values[variable.name])
    return stripped


def _slice_quantizer(quantizer, keep):
    if keep is not None and hasattr(quantizer, "slice_channels"):
        return quantizer.slice_channels(keep)
    copy = type(quantizer).from_config(quantizer.get_config())
    copy.build(None)
    copy.set_weights(quantizer.get_weights())
    return copy


def _slice(layer, values, config, keep_in, keep_out, zero, kinds):
    """Slices weights of `layer` to the kept input and output channels."""
    if not kinds:
        return values, config
    values = dict(values)
    if isinstance(layer, lt.SEPARABLE):
        if keep_in is not None:
            mult = layer.depth_multiplier
            values["depthwise_kernel"] = values["depthwise_kernel"][..., keep_in, :]
            values["pointwise_kernel"] = values["pointwise_kernel"][
                ..., np.repeat(keep_in, mult), :
            ]
        if keep_out is not None:
            values["pointwise_kernel"] = values["pointwise_kernel"][..., keep_out]
            if "bias" in values:
                values["bias"] = values["bias"][keep_out]
            config["filters"] = int(keep_out.sum())
        return values, config
    if isinstance(layer, lt.DEPTHWISE):
        values["kernel"] = values["kernel"][..., keep_in, :]
        if "bias" in values:
            values["bias"] = values["bias"][keep_in]
        return values, config
    if isinstance(layer, keras.layers.BatchNormalization):
        return {name: value[keep_in] for name, value in values.items()}, config
    # Conv1D/2D/3D and Dense: kernel (..., in, out), optional bias (out,).
    kernel = values["kernel"]
    if keep_in is not None:
        dropped = ~keep_in
        if zero is not None and np.any(zero[dropped] != 0.0):
            # Pruned inputs hold a constant: its contribution moves into the bias.
            spatial = tuple(range(kernel.ndim - 2))
            summed = kernel.sum(axis=spatial) if spatial else kernel
            fold = zero[dropped].astype(kernel.dtype) @ summed[dropped]
            if "bias" not in values:
                values["bias"] = np.zeros(kernel.shape[-1], kernel.dtype)
                config["use_bias"] = True
            values["bias"] = values["bias"] + fold
        kernel = kernel[..., keep_in, :]
    if keep_out is not None:
        kernel = kernel[..., keep_out]
        if "bias" in values:
            values["bias"] = values["bias"][keep_out]
        config["filters"] = int(keep_out.sum())
    values["kernel"] = kernel
    return values, config
