"""`create_compressed_model`: wraps a Keras model for the configured algorithms."""

import logging

from tf_aat import _graph
from tf_aat import _layer_rules as rules
from tf_aat._config import CompressionConfig
from tf_aat._layer_rules import unwrap
from tf_aat._wrapper import CompressionWrapper
from tf_aat.pruning._channels import analyze
from tf_aat.pruning._controller import FilterPruningController

logger = logging.getLogger("tf_aat")


def pruning_plan(model, params):
    """Which layers get a mask, and on which weights, for `params` (from the layer rules)."""
    analysis = analyze(model, params)
    prunable = {id(u.layer) for g in analysis.groups if g.prunable for u in g.units}
    plan = {}
    for use in analysis.uses:
        layer = unwrap(use.layer)
        rule = rules.rule_for(layer)
        if use.kind == "producer" and id(use.layer) in prunable:
            plan[id(use.layer)] = rule.weights("filter_weights", layer)
        elif use.kind == "passthrough" and any(s.unit in prunable for s in use.channels.segments):
            weights = rule.weights("masked_weights", layer)
            if weights:
                plan[id(use.layer)] = weights
    return plan


def copy_layer(layer):
    """A new layer with the config of `layer` (weights are copied once it is built)."""
    return type(layer).from_config(layer.get_config())


def create_compressed_model(model, config, init_data=None):
    """Wraps `model` with the compression algorithms of `config`.

    Args:
        model: a built Sequential or Functional Keras 3 model (nested
            Functional sub-models are followed). It is not modified.
        config: a `tf_aat.CompressionConfig` or a dict in NNCF's format.
        init_data: data for algorithms that initialise from activations
            (quantization ranges): a `tf.data.Dataset`, an array, or an
            iterable of `(x, y)` or `x` batches.

    Returns:
        `(controller, compressed_model)`: the controller sets and reports the
        compression rate; the compressed model trains with `fit` as usual.

    Example:

    ```python
    config = {"compression": {"algorithm": "filter_pruning",
                              "pruning_init": 0.3,
                              "params": {"prune_first_conv": True}}}
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    ctrl.compression_rate = 0.5
    print(ctrl.statistics())
    ```
    """
    config = CompressionConfig.from_dict(config)
    _graph.check_graph_model(model)
    pruning = config.algorithm("filter_pruning")
    quantization = config.algorithm("quantization")
    masked = pruning_plan(model, pruning) if pruning is not None else {}
    quant_plan = None
    if quantization is not None:
        from tf_aat.quantization._algorithm import quantization_plan

        quant_plan = quantization_plan(model, quantization)
    pending = []

    def replace(layer):
        new = copy_layer(layer)
        pending.append((layer, new))
        weight_quantizers = quant_plan.weight_quantizers(layer) if quant_plan else {}
        if id(layer) in masked or weight_quantizers:
            new = CompressionWrapper(
                new,
                masked_weights=masked.get(id(layer)),
                weight_quantizers=weight_quantizers,
                intermediate_quantizer=(
                    quant_plan.intermediate_quantizer(layer) if quant_plan else None
                ),
                name=layer.name,
            )
        after = quant_plan.layers_after(layer) if quant_plan else []
        return [new, *after] if after else new

    compressed = _graph.rebuild(
        model, replace, input_layers=quant_plan.input_layers if quant_plan else None
    )
    for old, new in pending:
        new.set_weights(old.get_weights())
    controllers = []
    if pruning is not None:
        ctrl = FilterPruningController(compressed, analyze(compressed, pruning), pruning)
        ctrl._set_rate(pruning.pruning_init if pruning.num_init_steps == 0 else 0.0, "init")
        controllers.append(ctrl)
    if quantization is not None:
        controllers.append(quant_plan.make_controller(compressed, init_data))
    if len(controllers) == 1:
        return controllers[0], compressed
    return CompositeCompressionController(controllers, config), compressed


class CompositeCompressionController:
    """Drives several algorithms; the rate the search varies is pruning's."""

    def __init__(self, controllers, config):
        self.children = list(controllers)
        self.config = config
        rated = [c for c in self.children if hasattr(c, "compression_rate")]
        self._rated = rated[0] if rated else self.children[0]
        self.scheduler = _CompositeScheduler([c.scheduler for c in self.children])

    @property
    def model(self):
        return self.children[0].model

    @property
    def compression_rate(self):
        return self._rated.compression_rate

    @compression_rate.setter
    def compression_rate(self, rate):
        self._rated.compression_rate = rate

    @property
    def maximal_compression_rate(self):
        return getattr(self._rated, "maximal_compression_rate", 1.0)

    @property
    def minimal_compression_rate(self):
        return getattr(self._rated, "minimal_compression_rate", 0.0)

    def disable_scheduler(self):
        for child in self.children:
            if hasattr(child, "disable_scheduler"):
                child.disable_scheduler()

    def get_state(self):
        return {"children": [c.get_state() for c in self.children]}

    def load_state(self, state):
        for child, child_state in zip(self.children, state["children"]):
            child.load_state(child_state)

    def statistics(self):
        return CompositeStatistics([c.statistics() for c in self.children])

    def strip_model(self, model=None):
        return self.children[0].strip_model(self.model if model is None else model)


class CompositeStatistics:
    def __init__(self, parts):
        self.parts = parts

    def to_dict(self):
        result = {}
        for index, part in enumerate(self.parts):
            values = part.to_dict()
            result[values.get("algorithm", str(index))] = values
        return result

    def __str__(self):
        return "\n\n".join(str(p) for p in self.parts)


class _CompositeScheduler:
    def __init__(self, schedulers):
        self.schedulers = schedulers

    def epoch_step(self, next_epoch=None):
        for scheduler in self.schedulers:
            scheduler.epoch_step(next_epoch)

    def step(self, next_step=None):
        for scheduler in self.schedulers:
            scheduler.step(next_step)

    def get_state(self):
        return [s.get_state() for s in self.schedulers]

    def load_state(self, state):
        for scheduler, s in zip(self.schedulers, state):
            scheduler.load_state(s)
