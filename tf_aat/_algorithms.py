"""The algorithm registry: what `create_compressed_model` loops over.

Each compression algorithm registers, under its NNCF name, how to parse its
config section, how to plan the model (which weights get which transform,
which layers are inserted), how to build its controller from the compressed
model, and how it strips. `CompressionConfig`, `create_compressed_model`,
`tf_aat.strip_model` and `export_tflite` ask the registry and know no
algorithm by name.
"""

import dataclasses
from collections.abc import Callable


class CompressionPlan:
    """What one algorithm adds to the model; each method answers for one original layer.

    The defaults add nothing; an algorithm overrides what it uses.
    """

    def adapt_copy(self, layer, new):
        """The copy of `layer` to wrap (default: `new`, the copy as it is); e.g.
        quantization copies a Dense without its softmax, which follows as a layer."""
        return new

    def masked_weights(self, layer):
        """`{weight name: channel axis}` masked by a channel mask, or None."""
        return None

    def weight_transforms(self, layer):
        """`{weight name: [transform layers]}` applied after the channel mask, before the
        quantizers (e.g. sparsity's element masks); see `CompressionWrapper`."""
        return {}

    def weight_quantizers(self, layer):
        """`{weight name: quantizer layer}` applied to the (masked) weights."""
        return {}

    def intermediate_quantizer(self, layer):
        """A quantizer inside the layer (a separable conv's depthwise result), or None."""
        return None

    def layers_after(self, layer):
        """Layers applied to the layer's output, in order."""
        return []

    def input_layers(self, tensor):
        """Layers applied to a model input first."""
        return []


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One compression algorithm, as registered.

    Args:
        name: the config's `"algorithm"` value (NNCF's name).
        parse: `(section, key_path) -> params`: validates the config section
            and raises `ConfigError` with the key path on bad input.
        params_type: the class of what `parse` returns.
        plan: `(model, params) -> CompressionPlan` for the original model.
        controller: `(compressed_model, params, plan, init_data) ->
            controller` built once the compressed model exists.
        strip: `(model) -> model`, run by `tf_aat.strip_model` (None: the
            algorithm leaves nothing to strip).
        before_export: `(model) -> model`, run by `export_tflite` (None:
            nothing to do).
        order: algorithms are planned and built in increasing order (their
            weight transforms apply in that order).
        strip_order: strips run in increasing order (default: `order`); an
            algorithm whose transforms must be baked into the weights before
            filters are removed strips before filter pruning (< 0).
    """

    name: str
    parse: Callable
    params_type: type
    plan: Callable
    controller: Callable
    strip: Callable | None = None
    before_export: Callable | None = None
    order: int = 0
    strip_order: int | None = None


_ALGORITHMS = {}


def register_algorithm(algorithm):
    """Registers `algorithm` (an `Algorithm`) under its name."""
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"Expected an Algorithm. Received: {algorithm!r}")
    _ALGORITHMS[algorithm.name] = algorithm


def names():
    """The registered algorithm names, sorted."""
    return sorted(_ALGORITHMS)


def get(name):
    """The registered `Algorithm` called `name`, or None."""
    return _ALGORITHMS.get(name)


def of_params(params):
    """The `Algorithm` whose `parse` made `params`."""
    for algorithm in _ALGORITHMS.values():
        if isinstance(params, algorithm.params_type):
            return algorithm
    raise TypeError(f"No registered algorithm parses into {type(params).__name__}.")


def in_order():
    return sorted(_ALGORITHMS.values(), key=lambda a: (a.order, a.name))


def _strip_sequence():
    def key(algorithm):
        order = algorithm.order if algorithm.strip_order is None else algorithm.strip_order
        return (order, algorithm.name)

    return sorted(_ALGORITHMS.values(), key=key)


def strip_model(model):
    """Returns `model` with every algorithm's strip applied, in order.

    Pruned filters are physically removed (filter pruning), sparsity masks
    are baked into the weights; weight and activation quantizers stay, so
    the result still exports to int8 TFLite. Works on any model made by
    `tf_aat.create_compressed_model`, also after a `.keras` save and load:
    everything is read from the model itself.

    Args:
        model: a model returned by `tf_aat.create_compressed_model` (or a
            `.keras` save of one, loaded again).

    Returns:
        A Keras model without the training-time machinery (`model` itself
        is left as it is).

    Example:

    ```python
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compressed.fit(x, y, epochs=1, callbacks=[tf_aat.CompressionCallback(ctrl)])
    stripped = tf_aat.strip_model(compressed)   # the same as ctrl.strip_model()
    stripped.save("stripped.keras")
    ```
    """
    for algorithm in _strip_sequence():
        if algorithm.strip is not None:
            model = algorithm.strip(model)
    return model


def before_export(model):
    for algorithm in in_order():
        if algorithm.before_export is not None:
            model = algorithm.before_export(model)
    return model
