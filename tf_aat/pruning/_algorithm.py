"""Filter pruning as a registered algorithm: its plan, controller and strip."""

import keras
import numpy as np

from tf_aat import _algorithms, _graph
from tf_aat import _layer_rules as rules
from tf_aat._layer_rules import unwrap
from tf_aat._wrapper import CompressionWrapper
from tf_aat.pruning import _batch_norm  # noqa: F401 - registers its call override
from tf_aat.pruning._channels import analyze
from tf_aat.pruning._controller import FilterPruningController
from tf_aat.pruning._input_mask import InputChannelMask
from tf_aat.pruning._params import FilterPruningParams, parse_filter_pruning


class PruningPlan(_algorithms.CompressionPlan):
    """Which layers get a channel mask, and on which weights (from the layer rules)."""

    def __init__(self, model, params):
        analysis = analyze(model, params)
        prunable = {id(u.layer) for g in analysis.groups if g.prunable for u in g.units}
        self._masked = {}
        self._input_masked = {}
        for use in analysis.uses:
            layer = unwrap(use.layer)
            rule = rules.rule_for(layer)
            if use.kind == "producer" and id(use.layer) in prunable:
                self._masked[id(use.layer)] = rule.weights("filter_weights", layer)
            elif use.kind == "passthrough" and any(
                s.unit in prunable for s in use.channels.segments
            ):
                weights = rule.weights("masked_weights", layer)
                if weights:
                    self._masked[id(use.layer)] = weights
            elif use.kind == "consumer" and any(
                s.unit in prunable and s.zero == 0.0 for s in use.channels.segments
            ):
                # Pruned inputs read as zero; masking the weights that read them keeps
                # them out of a weight quantizer's range, as strip will.
                weights = rule.weights("input_weights", layer)
                if weights:
                    self._input_masked[id(use.layer)] = weights

    def masked_weights(self, layer):
        return self._masked.get(id(layer))

    def weight_transforms(self, layer):
        weights = self._input_masked.get(id(layer), {})
        return {name: [InputChannelMask(axis)] for name, axis in weights.items()}


def _controller(compressed, params, plan, init_data):
    ctrl = FilterPruningController(compressed, analyze(compressed, params), params)
    ctrl._set_rate(params.pruning_init if params.num_init_steps == 0 else 0.0, "init")
    return ctrl


def _strip(model):
    from tf_aat.pruning._strip import strip_model

    return strip_model(model)


def _has_pruned_channels(model):
    for layer in _graph.leaf_layers(model):
        mask = layer.mask if isinstance(layer, CompressionWrapper) else None
        if mask is not None and float(np.min(keras.ops.convert_to_numpy(mask))) < 0.5:
            return True
    return False


def _before_export(model):
    # Zeroed BatchNormalization scales would fold into zero weight scales, which
    # TFLite rejects; removing the pruned filters first is exact and smaller.
    return _strip(model) if _has_pruned_channels(model) else model


_algorithms.register_algorithm(
    _algorithms.Algorithm(
        name="filter_pruning",
        parse=parse_filter_pruning,
        params_type=FilterPruningParams,
        plan=PruningPlan,
        controller=_controller,
        strip=_strip,
        before_export=_before_export,
        order=0,
    )
)
