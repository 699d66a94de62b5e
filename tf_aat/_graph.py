"""Reading and rebuilding the layer graph of Sequential and Functional models.

Keras keeps the call graph of a Functional model as nodes (one per layer
call) joined by symbolic tensors. Compression needs two things from it: a flat
view across nested sub-models, to follow channels from producer to consumer,
and a rebuild that swaps layers (for wrapped or stripped ones) while keeping
the wiring, the nesting and the model type.
"""

import dataclasses

import keras
from keras import tree


class UnsupportedModelError(ValueError):
    """The model's structure cannot be read as a layer graph."""


def is_graph_model(obj):
    """True for Sequential and Functional models (models with a layer graph)."""
    return isinstance(obj, keras.Sequential) or _is_functional(obj)


def _is_functional(obj):
    return (
        isinstance(obj, keras.Model)
        and hasattr(obj, "_nodes_by_depth")
        and hasattr(obj, "_run_through_graph")
    )


def check_graph_model(model):
    """Raises a clear error for models compression cannot traverse."""
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(
            "Expected a Keras 3 `keras.Model` (Sequential or Functional). "
            f"Received: model={type(model).__module__}.{type(model).__name__}. "
            "tf_keras / Keras 2 models are not supported; build the model with `import keras`."
        )
    if isinstance(model, keras.Sequential):
        if _functional_of(model) is None:
            raise UnsupportedModelError(
                "The Sequential model has no known input shape, so its layers cannot be "
                "traced. Start it with `keras.Input(shape=...)` or call "
                f"`model.build(input_shape)` first. Received: model={model.name!r}"
            )
        return
    if not _is_functional(model):
        raise UnsupportedModelError(
            "Expected a Sequential or Functional model; subclassed models hide their "
            "layer graph inside `call()`, so channels cannot be followed. Rebuild it with "
            "the Functional API (`keras.Model(inputs, outputs)`). "
            f"Received: model={model.name!r} of class {type(model).__name__}"
        )


def _functional_of(model):
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model


@dataclasses.dataclass
class FlatNode:
    """One call of a leaf (non-model) operation, with graph-wide tensor ids."""

    layer: object
    inputs: list
    outputs: list
    input_shapes: list
    output_shapes: list
    call_kwargs: dict
    output_dtypes: list
    path: tuple
    # Positional arguments, flattened: a tensor id where a tensor was passed,
    # the value itself for a constant (`x + 3.0` has [id(x), 3.0]).
    arguments: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FlatGraph:
    nodes: list
    inputs: list
    outputs: list

    def consumers(self):
        result = {}
        for node in self.nodes:
            for tensor in node.inputs:
                result.setdefault(tensor, []).append(node)
        return result

    def calls_per_layer(self):
        counts = {}
        for node in self.nodes:
            counts[id(node.layer)] = counts.get(id(node.layer), 0) + 1
        return counts


def flatten(model):
    """Returns the `FlatGraph` of `model`, looking through nested sub-models."""
    check_graph_model(model)
    nodes = []
    functional = _functional_of(model)
    input_ids = [("", id(t)) for t in functional.inputs]
    outputs = _walk(functional, "", {}, nodes, ())
    return FlatGraph(nodes=nodes, inputs=input_ids, outputs=outputs)


def _walk(functional, prefix, alias, nodes, path):
    def tid(tensor):
        key = (prefix, id(tensor))
        return alias.get(key, key)

    for depth in sorted(functional._nodes_by_depth, reverse=True):
        for node in functional._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            operation = node.operation
            in_ids = [tid(t) for t in node.input_tensors]
            if isinstance(operation, keras.Model) and is_graph_model(operation):
                inner = _functional_of(operation)
                inner_prefix = f"{prefix}/{operation.name}#{len(nodes)}"
                for inner_tensor, outer in zip(inner.inputs, in_ids):
                    alias[(inner_prefix, id(inner_tensor))] = outer
                inner_outputs = _walk(inner, inner_prefix, alias, nodes, path + (operation.name,))
                for outer_tensor, inner_id in zip(node.outputs, inner_outputs):
                    alias[(prefix, id(outer_tensor))] = inner_id
                continue
            if isinstance(operation, keras.Model):
                raise UnsupportedModelError(
                    "A nested model is subclassed, so its layers cannot be followed. "
                    "Rebuild it with the Functional API. "
                    f"Received: nested model={operation.name!r} of class "
                    f"{type(operation).__name__}"
                )
            kwargs = {
                k: v
                for k, v in node.arguments.kwargs.items()
                if not isinstance(v, keras.KerasTensor)
            }
            arguments = [
                tid(a) if isinstance(a, keras.KerasTensor) else a
                for a in tree.flatten(node.arguments.args)
            ]
            nodes.append(
                FlatNode(
                    layer=operation,
                    inputs=in_ids,
                    outputs=[tid(t) for t in node.outputs],
                    input_shapes=[tuple(t.shape) for t in node.input_tensors],
                    output_shapes=[tuple(t.shape) for t in node.outputs],
                    call_kwargs=kwargs,
                    output_dtypes=[t.dtype for t in node.outputs],
                    path=path,
                    arguments=arguments,
                )
            )
    return [tid(t) for t in functional.outputs]


def leaf_layers(model):
    """All distinct leaf layers of `model`, in call order, nested models included.

    Keras operation nodes that are not layers (`x + y`, `keras.ops.*`) are
    left out: they hold no weights and are rebuilt as they are.
    """
    seen = {}
    for node in flatten(model).nodes:
        if isinstance(node.layer, keras.layers.Layer):
            seen.setdefault(id(node.layer), node.layer)
    return list(seen.values())


def rebuild(model, replace, input_layers=None, operation_layers=None):
    """Returns a new model with the same wiring where each leaf layer is `replace(layer)`.

    `replace` is called once per distinct layer (shared layers stay shared) and
    returns the layer to call in its place: a new layer, a wrapper, the layer
    itself, or a list of layers applied one after another. `input_layers`,
    if given, is called with each model input and returns the layers to apply
    to it first (for example an input quantizer). `operation_layers`, if
    given, is called once per Keras operation node that is not a layer
    (`x + y`) and returns the layers to apply to its output. Nested models are
    rebuilt as nested models with input shapes taken from their new inputs, so
    channel counts may change through them.
    """
    check_graph_model(model)
    memo = {}

    def replaced(layer):
        # Keras operations that are not layers (`x + y`) have no state: reuse them.
        if not isinstance(layer, keras.layers.Layer):
            if operation_layers is None:
                return layer
            if id(layer) not in memo:
                after = list(operation_layers(layer) or [])
                memo[id(layer)] = [layer, *after] if after else layer
            return memo[id(layer)]
        if id(layer) not in memo:
            memo[id(layer)] = replace(layer)
        return memo[id(layer)]

    functional = _functional_of(model)
    inputs = [_input_like(t, t.shape[1:]) for t in functional.inputs]
    return _rebuild(model, inputs, replaced, input_layers)


def _input_like(tensor, shape, name=None):
    return keras.Input(shape=tuple(shape), dtype=tensor.dtype, name=name or _input_name(tensor))


def _input_name(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else None


def _rebuild(model, inputs, replaced, input_layers=None):
    functional = _functional_of(model)
    entry = list(inputs)
    if input_layers is not None:
        for index, tensor in enumerate(inputs):
            for layer in input_layers(functional.inputs[index]):
                inputs[index] = layer(inputs[index])
    cache = {}

    def operation_fn(operation):
        if isinstance(operation, keras.Model) and is_graph_model(operation):

            def call_nested(*args, **kwargs):
                flat = tree.flatten(args[0] if len(args) == 1 else args)
                key = (id(operation), tuple(tuple(t.shape) for t in flat))
                if key not in cache:
                    inner = _functional_of(operation)
                    new_inputs = [
                        _input_like(old, new.shape[1:]) for old, new in zip(inner.inputs, flat)
                    ]
                    cache[key] = _rebuild(operation, new_inputs, replaced)
                return cache[key](*args, **kwargs)

            return call_nested
        layer = replaced(operation)
        if isinstance(layer, (list, tuple)):
            return _chain(layer)
        return layer

    if isinstance(model, keras.Sequential):
        layers = []
        for layer in model.layers:
            if isinstance(layer, keras.Model) and is_graph_model(layer):
                layers.append(operation_fn(layer))
                continue
            new = replaced(layer)
            layers.extend(new if isinstance(new, (list, tuple)) else [new])
        if inputs[0] is entry[0] and all(isinstance(layer, keras.layers.Layer) for layer in layers):
            return keras.Sequential([entry[0], *layers], name=model.name)
        # A nested model or an input layer in a Sequential gives a Functional model.
        x = inputs[0]
        for layer in layers:
            x = layer(x)
        return keras.Model(entry, x, name=model.name)
    structured = tree.pack_sequence_as(functional._inputs_struct, inputs)
    outputs = functional._run_through_graph(structured, operation_fn=operation_fn)
    entry_structured = tree.pack_sequence_as(functional._inputs_struct, entry)
    return keras.Model(entry_structured, outputs, name=model.name)


def _chain(layers):
    def call(*args, **kwargs):
        x = layers[0](*args, **kwargs)
        for layer in layers[1:]:
            x = layer(x)
        return x

    return call
