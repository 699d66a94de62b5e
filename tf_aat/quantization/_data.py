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
