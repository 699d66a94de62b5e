"""`create_compressed_model`: wraps a Keras model for the configured algorithms."""

import logging

from tf_aat import _algorithms, _graph, _progress
from tf_aat._config import CompressionConfig
from tf_aat._controller import CompositeCompressionController, has_rate
from tf_aat._errors import ConfigError
from tf_aat._wrapper import CompressionWrapper

logger = logging.getLogger("tf_aat")


def copy_layer(layer):
    """A new layer with the config of `layer` (weights are copied once it is built).

    Functions Keras cannot deserialize (a `Lambda`'s Python function, an
    unregistered activation or initializer) are kept as the same Python objects,
    with a warning: loading a `.keras` save of the model then needs them
    registered with `keras.saving.register_keras_serializable`. A layer that can
    be copied neither way raises a `TypeError` naming it and that fix.
    """
    from tf_aat._copying import layer_from_config

    return layer_from_config(layer)


def create_compressed_model(model, config, init_data=None, verbose="auto"):
    """Wraps `model` with the compression algorithms of `config`.

    Args:
        model: a built Sequential or Functional Keras 3 model (nested
            Functional sub-models are followed). It is not modified.
        config: a `tf_aat.CompressionConfig` or a dict in NNCF's format.
        init_data: data for algorithms that initialise from activations
            (quantization ranges): a `tf.data.Dataset`, an array, or an
            iterable of `(x, y)` or `x` batches.
        verbose: what the long initialisation steps (quantization's range
            initialisation and BatchNormalization adaptation) show: 0
            nothing (the counts go to the `tf_aat` logger), 1 a Keras
            progress bar and a closing line with the counts, 2 only the
            closing lines, `"auto"` (default) 1 while Keras's interactive
            logging is on, else 2 (as `fit()` does).

    Returns:
        `(controller, compressed_model)`: the controller sets and reports the
        compression rate; the compressed model trains with `fit` as usual.
        With several algorithms the controller is a
        `CompositeCompressionController` whose rate is that of the algorithm
        holding `accuracy_aware_training` (else the only one with a rate).

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
    with _progress.verbosity(verbose):
        return _create_compressed_model(model, config, init_data)


def _create_compressed_model(model, config, init_data):
    config = CompressionConfig.from_dict(config)
    _graph.check_graph_model(model)
    chosen = sorted(
        ((_algorithms.of_params(p), p) for p in config.algorithms),
        key=lambda item: (item[0].order, item[0].name),
    )
    plans = [(algorithm, params, algorithm.plan(model, params)) for algorithm, params in chosen]
    pending = []

    def replace(layer):
        new = copy_layer(layer)
        for _, _, plan in plans:
            new = plan.adapt_copy(layer, new)
        pending.append((layer, new))
        masked, quantizers, intermediate, after = {}, {}, None, []
        transforms = {}
        for _, _, plan in plans:
            masked.update(plan.masked_weights(layer) or {})
            for name, added in (plan.weight_transforms(layer) or {}).items():
                transforms.setdefault(name, []).extend(added)
            quantizers.update(plan.weight_quantizers(layer) or {})
            intermediate = plan.intermediate_quantizer(layer) or intermediate
            after.extend(plan.layers_after(layer) or [])
        if masked or quantizers or transforms:
            new = CompressionWrapper(
                new,
                masked_weights=masked or None,
                weight_quantizers=quantizers,
                intermediate_quantizer=intermediate,
                weight_transforms=transforms or None,
                name=layer.name,
            )
        return [new, *after] if after else new

    def input_layers(tensor):
        return [layer for _, _, plan in plans for layer in plan.input_layers(tensor) or []]

    def operation_layers(operation):
        return [layer for _, _, plan in plans for layer in plan.layers_after(operation) or []]

    compressed = _graph.rebuild(
        model, replace, input_layers=input_layers, operation_layers=operation_layers
    )
    for old, new in pending:
        new.set_weights(old.get_weights())
    controllers = [
        algorithm.controller(compressed, params, plan, init_data)
        for algorithm, params, plan in plans
    ]
    if len(controllers) == 1:
        return controllers[0], compressed
    composite = CompositeCompressionController(
        controllers, config, rated_name=config.accuracy_aware_algorithm
    )
    if config.accuracy_aware_training is not None and not composite.has_rate:
        rated = [c.name for c in controllers if has_rate(c)]
        if rated:
            raise ConfigError(
                "accuracy_aware_training",
                "the section inside the algorithm whose rate the search varies, since "
                f"several algorithms have a rate: {rated}",
                "a top-level section",
                "Move `accuracy_aware_training` into that algorithm's section.",
            )
    return composite, compressed
