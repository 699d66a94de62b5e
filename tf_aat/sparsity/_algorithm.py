"""Magnitude and RB sparsity as registered algorithms: their plan, controller and strip."""

import numpy as np

from tf_aat import _algorithms, _graph
from tf_aat import _layer_rules as rules
from tf_aat import _layer_types as lt
from tf_aat._scopes import in_scope
from tf_aat._wrapper import bake_weight_transforms
from tf_aat.sparsity._controller import MagnitudeSparsityController, RBSparsityController
from tf_aat.sparsity._layers import MagnitudeSparsityMask, RBSparsityMask, is_sparsity_mask
from tf_aat.sparsity._params import (
    MagnitudeSparsityParams,
    RBSparsityParams,
    parse_magnitude_sparsity,
    parse_rb_sparsity,
)

_KERNELS = {
    "conv": ("kernel",),
    "depthwise": ("kernel",),
    "dense": ("kernel",),
    "separable": ("depthwise_kernel", "pointwise_kernel"),
}


def sparsified_weights(layer):
    """The kernels NNCF sparsifies in `layer`: conv, depthwise, separable (both) and dense."""
    kind = rules.rule_for(layer).quantization_kind(layer)
    names = _KERNELS.get(kind)
    if (
        names is None
        and isinstance(layer, lt.CONVOLUTIONS)
        and not isinstance(layer, lt.TRANSPOSED)
    ):
        names = ("kernel",)  # a grouped convolution
    if names is None:
        return ()
    return tuple(n for n in names if getattr(layer, n, None) is not None)


class SparsityPlan(_algorithms.CompressionPlan):
    """One element-mask transform on each sparsified kernel selected by the scopes."""

    def __init__(self, model, params):
        self.params = params
        self._weights = {}
        self.total_size = 0
        for layer in _graph.leaf_layers(model):
            names = sparsified_weights(layer)
            if names and self._selected(layer):
                self._weights[id(layer)] = names
                self.total_size += sum(int(np.prod(getattr(layer, n).shape)) for n in names)

    def _selected(self, layer):
        return in_scope(layer.name, self.params.ignored_scopes, self.params.target_scopes)

    def _mask(self, layer, name):
        raise NotImplementedError

    def weight_transforms(self, layer):
        return {name: [self._mask(layer, name)] for name in self._weights.get(id(layer), ())}


class MagnitudeSparsityPlan(SparsityPlan):
    def _mask(self, layer, name):
        return MagnitudeSparsityMask(name=f"{layer.name}_{name}_sparsity")


class RBSparsityPlan(SparsityPlan):
    def _mask(self, layer, name):
        return RBSparsityMask(total_size=max(self.total_size, 1), name=f"{layer.name}_{name}_rb")


def _magnitude_controller(compressed, params, plan, init_data):
    ctrl = MagnitudeSparsityController(compressed, params)
    ctrl._set_level(ctrl.scheduler.current_level, source="init")
    return ctrl


def _rb_controller(compressed, params, plan, init_data):
    ctrl = RBSparsityController(compressed, params)
    ctrl._set_level(ctrl.scheduler.current_level, source="init")
    return ctrl


def strip(model):
    """Bakes the sparsity masks into the weights (zeros for good) and removes them."""
    return bake_weight_transforms(model, is_sparsity_mask)


def _before_export(model):
    return strip(model)  # the model as it is when it holds no sparsity masks


# Sparsity plans first (order -5): its strip and export step bake the zeros in
# before filter pruning (order 0) removes filters; its masks apply after the
# channel mask and before quantization's weight quantizers (order 10).
for _name, _parse, _params, _plan, _controller in (
    (
        "magnitude_sparsity",
        parse_magnitude_sparsity,
        MagnitudeSparsityParams,
        MagnitudeSparsityPlan,
        _magnitude_controller,
    ),
    ("rb_sparsity", parse_rb_sparsity, RBSparsityParams, RBSparsityPlan, _rb_controller),
):
    _algorithms.register_algorithm(
        _algorithms.Algorithm(
            name=_name,
            parse=_parse,
            params_type=_params,
            plan=_plan,
            controller=_controller,
            strip=strip,
            before_export=_before_export,
            order=-5,
            strip_order=-10,
        )
    )
