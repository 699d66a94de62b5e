"""Compile and evaluate helpers shared by the example scripts and benchmarks."""

import keras
import numpy as np


def compile_classifier(model, learning_rate):
    """Adam, sparse cross-entropy on logits, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def accuracy(model, x, y, batch_size):
    """Top-1 accuracy of a logits model.

    Plain calls instead of `predict`: `predict` on ever new models warns about
    retracing.
    """
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = keras.ops.convert_to_numpy(model(x[start : start + batch_size], training=False))
        correct += int(np.sum(np.argmax(logits, axis=-1) == y[start : start + batch_size]))
    return correct / len(x)
