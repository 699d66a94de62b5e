"""New layers like existing ones, also when they hold functions Keras cannot deserialize.

`type(layer).from_config(layer.get_config())` is a full serialization round trip: a
`Lambda` around a Python lambda, or a layer whose activation, initializer,
regularizer or constraint is a function not registered with
`keras.saving.register_keras_serializable`, does not survive it. The model copies
that compression makes live in the same Python process as the original, so such
layers are rebuilt with the original Python objects instead.
"""

import logging

import keras

logger = logging.getLogger("tf_aat")

_REGISTER = "`@keras.saving.register_keras_serializable()`"


def layer_from_config(layer, config=None):
    """A new, unbuilt layer of `layer`'s class made from `config`.

    Args:
        layer: the Keras layer to copy; its Python attributes stand in for the
            config entries Keras cannot deserialize.
        config: the config of the new layer (`layer.get_config()` when None);
            callers may change entries (a pruned layer's `filters`).

    Returns:
        A new layer with its own (not yet created) variables. It shares with
        `layer` only the Python objects (functions, initializers) that Keras
        could not rebuild from their serialized form; then a warning says that
        saving the model to `.keras` and loading it again needs those functions
        registered with `keras.saving.register_keras_serializable` (a Python
        lambda in a `Lambda` layer needs `safe_mode=False` when loading instead).

    Raises:
        TypeError: the layer can be rebuilt neither from its config nor with its
            own Python objects; the message names the layer and the fix.
    """
    first_error = None
    try:
        if config is None:
            config = layer.get_config()
        if not _holds_python_lambda(layer):
            return type(layer).from_config(dict(config))
    except Exception as error:  # Keras raises TypeError, ValueError and others here.
        first_error = error
    substituted = _substitutes(layer, config) if config is not None else {}
    if config is not None and _holds_python_lambda(layer):
        # Keras before 3.13 rebuilds a lambda from its bytecode without its module's
        # globals (`keras` undefined inside it); the copy calls the same function.
        substituted = {**substituted, "function": layer.function, "dtype": layer.dtype_policy}
    if substituted:
        new = _from_substituted(layer, {**config, **substituted})
        if new is not None:
            _warn_copied(layer, substituted)
            return new
    raise TypeError(
        f"Cannot copy layer {layer.name!r} ({type(layer).__name__}) for compression: "
        "Keras could not rebuild it from its config"
        + (", nor from its config with its own Python functions" if substituted else "")
        + ". Expected a layer whose functions, classes and initializers Keras can "
        f"deserialize. Received: {layer.name}={type(layer).__name__}, "
        f"error={_short(first_error or 'a Python lambda')!r}. Register the custom functions and classes it "
        f"holds with {_REGISTER} (and import them before compressing or loading), or "
        "give the layer a `get_config()` that returns its constructor arguments."
    ) from first_error


def _holds_python_lambda(layer):
    return isinstance(layer, keras.layers.Lambda) and _name(layer.function) == "<lambda>"


def _substitutes(layer, config):
    """Config entries that do not deserialize, mapped to the layer's own objects."""
    substituted = {}
    for key, value in config.items():
        if key == "dtype" or not _looks_serialized(value) or _deserializes(value):
            continue
        for attribute in (key, "_" + key):
            if hasattr(layer, attribute):
                substituted[key] = getattr(layer, attribute)
                break
    if substituted and "dtype" in config:
        substituted["dtype"] = layer.dtype_policy
    return substituted


def _looks_serialized(value):
    return isinstance(value, dict) and "class_name" in value


def _deserializes(value):
    try:
        keras.saving.deserialize_keras_object(value)
    except Exception:
        return False
    return True


def _from_substituted(layer, config):
    # `from_config` first (it handles nested configs); `Lambda.from_config` refuses
    # a Python function, which the constructor takes.
    for make in (type(layer).from_config, lambda c: type(layer)(**c)):
        try:
            return make(dict(config))
        except Exception:
            continue
    return None


def _name(obj):
    return getattr(obj, "__name__", None) or type(obj).__name__


def _warn_copied(layer, substituted):
    held = ", ".join(
        f"{key}={_name(value)}" for key, value in substituted.items() if key != "dtype"
    )
    lambdas = any(_name(value) == "<lambda>" for value in substituted.values())
    logger.warning(
        "Layer %r (%s) holds Python functions that Keras cannot deserialize (%s): "
        "its copy uses the same functions. Saving the model to `.keras` works, but "
        "loading it needs them registered with %s%s.",
        layer.name,
        type(layer).__name__,
        held,
        _REGISTER,
        " (a Python lambda in a `Lambda` layer loads with `safe_mode=False` instead)"
        if lambdas
        else "",
    )


def _short(error, limit=300):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
