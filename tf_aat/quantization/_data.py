"""Reading model inputs from the forms `init_data` and `representative_data` may take."""

import numpy as np
import tensorflow as tf
from keras import tree

_DEFAULT_BATCH = 32


def input_batches(data, batch_size=_DEFAULT_BATCH):
    """Yields input batches (arrays, or lists of arrays for several inputs) from `data`.

    `data` may be a `tf.data.Dataset` of batches, a NumPy array (or a tuple
    `(x, y)` of arrays), or any iterable of `(x, y)`, `(x, y, weight)` or `x`
    batches. Labels are dropped.
    """
    if isinstance(data, np.ndarray) or tf.is_tensor(data):
        yield from _split(np.asarray(data), batch_size)
        return
    if isinstance(data, tuple) and data and isinstance(data[0], np.ndarray):
        yield from _split(data[0], batch_size)
        return
    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    for element in data:
        if isinstance(element, tuple) and len(element) in (2, 3):
            element = element[0]
        yield tree.map_structure(np.asarray, element)


def _split(array, batch_size):
    for start in range(0, len(array), batch_size):
        yield array[start : start + batch_size]


def batch_length(batch):
    return len(tree.flatten(batch)[0])


def take_samples(data, num_samples, batch_size=_DEFAULT_BATCH):
    """Input batches from `data` until `num_samples` samples (the last batch is cut)."""
    seen = 0
    for batch in input_batches(data, batch_size):
        if seen >= num_samples:
            return
        size = batch_length(batch)
        if seen + size > num_samples:
            batch = tree.map_structure(lambda a, n=num_samples - seen: a[:n], batch)
            size = num_samples - seen
        seen += size
        yield batch


def finite_batches(batches, name="init_data", purpose=None):
    """Yields `batches` unchanged, raising a `ValueError` at the first NaN or inf.

    The message gives the offending sample's index (0-based, counted over the
    batches in the order they are iterated), the value and where in the sample
    it is. One non-finite input makes every range it reaches, and so every
    quantized output after it, NaN.
    """
    seen = 0
    for batch in batches:
        arrays = tree.flatten(batch)
        for position, array in enumerate(arrays):
            array = np.asarray(array)
            if not (np.issubdtype(array.dtype, np.floating) or np.iscomplexobj(array)):
                continue
            bad = ~np.isfinite(array)
            if not bad.any():
                continue
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            index = seen + where[0] if array.ndim else seen
            of_input = f" of input {position}" if len(arrays) > 1 else ""
            raise ValueError(
                f"Expected finite values in `{name}`"
                + (f" ({purpose})" if purpose else "")
                + f". Received: {name} sample {index} (0-based, in the order the data is "
                f"iterated){of_input} = {array[where].item()!r} at element {where[1:]}. Remove or "
                "repair that sample (for example `np.nan_to_num`, or "
                "`dataset.filter(lambda x, *_: tf.reduce_all(tf.math.is_finite(x)))`)."
            )
        seen += batch_length(batch) if arrays else 0
        yield batch


# -- data for a model with several inputs ---------------------------------------


def input_name(tensor):
    """The name of a Keras input tensor (the name its `keras.Input` layer was given)."""
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else getattr(tensor, "name", None)


def _is_array(value):
    return isinstance(value, np.ndarray) or tf.is_tensor(value)


def _all_arrays(values):
    return all(_is_array(v) for v in values)


def _model_inputs_of(element, names):
    """The inputs part of one batch (or of in-memory data) for a model with `names` inputs.

    Reads Keras's own forms: a list or tuple with one array per input, a dict
    keyed by input name, and either of them as the `x` of `(x, y)` or
    `(x, y, sample_weight)`. Returns one array per input, in the order of `names`.
    """
    n = len(names)
    x = element
    if isinstance(element, (tuple, list)) and not (len(element) == n and _all_arrays(element)):
        if len(element) in (2, 3) and isinstance(element[0], (tuple, list, dict)):
            x = element[0]
    if isinstance(x, dict):
        missing = [name for name in names if name not in x]
        if missing:
            raise ValueError(
                f"Expected the data's dict to have a key for each model input {names}. "
                f"Received: keys {sorted(map(str, x))}, missing {missing}"
            )
        arrays = [x[name] for name in names]
    elif isinstance(x, (tuple, list)) and len(x) == n and _all_arrays(x):
        arrays = list(x)
    else:
        raise ValueError(
            f"Expected data for a model with {n} inputs {names}: a list or tuple of {n} arrays, "
            "a dict keyed by input name, or either of them as `x` in `(x, y)`. Received: "
            f"{_describe(element)}"
        )
    return [np.asarray(a) for a in arrays]


def _describe(value):
    if _is_array(value):
        return f"array of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return "dict {" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_describe(v) for v in value)
        return f"{type(value).__name__} ({inner})"
    return type(value).__name__


def model_input_batches(data, inputs, batch_size=_DEFAULT_BATCH):
    """Yields one list of arrays per batch, in the order of `inputs` (a model's `model.inputs`).

    For a single input this reads what `input_batches` reads (and also a dict
    keyed by the input's name). For several inputs, `data` may be a list or
    tuple of arrays (one per input), a dict keyed by input name, `(x, y)` or
    `(x, y, sample_weight)` with such an `x`, or a `tf.data.Dataset` or any
    iterable of batches in those forms. Labels are dropped.
    """
    names = [input_name(t) for t in inputs]
    if len(names) == 1:
        for batch in input_batches(data, batch_size):
            if isinstance(batch, dict):
                batch = _model_inputs_of(batch, names)[0]
            elif isinstance(batch, (tuple, list)) and len(batch) == 1:
                batch = batch[0]
            yield [np.asarray(batch)]
        return
    in_memory = isinstance(data, dict) or (
        isinstance(data, (tuple, list))
        and (
            (len(data) == len(names) and _all_arrays(data))
            or (
                isinstance(data, tuple)
                and len(data) in (2, 3)
                and isinstance(data[0], (tuple, list, dict))
                and _all_arrays(tree.flatten(data[0]))
            )
        )
    )
    if in_memory:
        arrays = _model_inputs_of(data, names)
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(
                f"Expected the arrays of the model inputs {names} to have the same number of "
                f"samples. Received: {[len(a) for a in arrays]}"
            )
        for start in range(0, lengths.pop(), batch_size):
            yield [a[start : start + batch_size] for a in arrays]
        return
    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    for element in data:
        yield _model_inputs_of(element, names)


def take_model_inputs(data, inputs, num_samples, batch_size=_DEFAULT_BATCH):
    """`model_input_batches` until `num_samples` samples (the last batch is cut).

    Stops after `num_samples`, so an endless dataset (`.repeat()`) is fine.
    """
    if num_samples <= 0:
        return
    seen = 0
    for batch in model_input_batches(data, inputs, batch_size):
        if seen + len(batch[0]) > num_samples:
            batch = [a[: num_samples - seen] for a in batch]
        seen += len(batch[0])
        yield batch
        if seen >= num_samples:  # stop before reading another batch
            return
