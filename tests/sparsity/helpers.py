"""Small models and digits for the sparsity tests."""

import keras
import numpy as np

from tests.accuracy_aware.digits_test import compile_model, load_digits, make_model

__all__ = ["compile_model", "load_digits", "make_model", "separable_model", "zero_fraction"]


def separable_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.SeparableConv2D(16, 3, padding="same", name="separable")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="dense")(x)
    return keras.Model(inputs, outputs)


def kernels(ctrl):
    """{(layer, weight): effective kernel} of the sparsified weights."""
    from tf_aat.sparsity._controller import effective_weight

    return {(w.name, n): effective_weight(w, n) for w, n, _ in ctrl.entries}


def zero_fraction(arrays):
    arrays = list(arrays)
    zeros = sum(int(np.sum(a == 0)) for a in arrays)
    return zeros / sum(a.size for a in arrays)
