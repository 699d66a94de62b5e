"""The element masks sparsity puts on a weight: `CompressionWrapper` weight transforms.

Both are small Keras layers, built with the weight's shape and called on the
weight's value in the forward pass (after the channel mask, before the
weight quantizer). Their state lives in variables, so a changed level is an
`.assign()`, never a constant traced into the training step, and travels
with the weights (checkpoints, `.keras` files).
"""

import math

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tf_aat")
class MagnitudeSparsityMask(keras.layers.Layer):
    """Multiplies a weight by a binary `mask` (non-trainable, the weight's shape).

    The controller chooses the mask (the least important weights get 0) and
    assigns it whenever the sparsity level changes; this layer only applies it.
    """

    def build(self, input_shape):
        """Creates the non-trainable `mask` variable (ones, the weight's shape)."""
        self.mask = self.add_weight(
            name="mask", shape=tuple(input_shape), initializer="ones", trainable=False
        )
        self.built = True

    def call(self, value):
        """`value * mask`: the weight with its masked entries zeroed."""
        return value * ops.cast(self.mask, value.dtype)

    def binary_mask(self):
        """The mask as a NumPy array of 0/1."""
        return np.asarray(self.mask.numpy()) > 0.5

    def compute_output_shape(self, input_shape):
        """The weight's own shape."""
        return input_shape


def _logit(p):
    return math.log(p / (1.0 - p))


@keras.saving.register_keras_serializable(package="tf_aat")
class RBSparsityMask(keras.layers.Layer):
    """Regularization-based sparsity (NNCF's `rb_sparsity`): a trainable logit per weight.

    Training (`training=True`, not frozen) multiplies the weight by a sampled
    binary mask: `round(sigmoid(logit + log(u / (1 - u))))`, `u` uniform in
    `[eps, 1 - eps]` (logistic noise), with the straight-through gradient of
    the rounding. It also adds, through `add_loss`, this weight's part of
    NNCF's regularization loss, `(n / N) * ((kept / n - target) / p) ** 2`:
    `kept` is the number of logits above 0 (straight-through again), `n` this
    weight's size, `N` the size of all sparsified weights of the model and
    `target` = 1 - the sparsity level (a variable the controller assigns).
    Inference, and training once frozen, use the mask `logit > 0` and add no
    loss. Logits start at `logit(0.99)`, as in NNCF.
    """

    def __init__(self, total_size=1, p=0.05, eps=1e-6, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.total_size = int(total_size)
        self.p = float(p)
        self.eps = float(eps)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        """Creates the trainable `mask` logits (at `logit(0.99)`) and the `target` and `frozen` variables."""
        self.mask = self.add_weight(
            name="mask",
            shape=tuple(input_shape),
            initializer=keras.initializers.Constant(_logit(0.99)),
            trainable=True,
        )
        self.target = self.add_weight(name="target", shape=(), initializer="ones", trainable=False)
        self.frozen = self.add_weight(name="frozen", shape=(), initializer="zeros", trainable=False)
        self.built = True

    @staticmethod
    def _straight_through_round(x):
        # Forward: round(x); backward: the identity (NNCF's st_threshold).
        return x + ops.stop_gradient(ops.round(x) - x)

    def call(self, value, training=None):
        """The weight times a mask: sampled while training, `logit > 0` otherwise.

        While training (and not frozen) also adds this weight's part of the
        regularization loss (see the class docstring).

        Args:
            value: the weight.
            training: whether the call is a training step.

        Returns:
            A tensor of the weight's shape and dtype.
        """
        logits = ops.cast(self.mask, value.dtype)
        hard = ops.cast(logits > 0, value.dtype)
        if not training:
            return value * ops.stop_gradient(hard)
        u = keras.random.uniform(
            ops.shape(logits), minval=self.eps, maxval=1.0 - self.eps, seed=self._seed_generator
        )
        noisy = self._straight_through_round(ops.sigmoid(logits + ops.log(u / (1.0 - u))))
        frozen = ops.cast(self.frozen, value.dtype)
        mask = frozen * ops.stop_gradient(hard) + (1.0 - frozen) * noisy
        size = float(np.prod(value.shape))
        kept = ops.sum(self._straight_through_round(ops.sigmoid(logits)))
        target = ops.cast(self.target, value.dtype)
        loss = (size / self.total_size) * ops.square((kept / size - target) / self.p)
        self.add_loss((1.0 - frozen) * loss)
        return value * mask

    def binary_mask(self):
        """The mask strip bakes in (`logit > 0`), as a NumPy bool array."""
        return np.asarray(self.mask.numpy()) > 0.0

    def compute_output_shape(self, input_shape):
        """The weight's own shape."""
        return input_shape

    def get_config(self):
        """`total_size`, `p`, `eps` and `seed`, for `.keras` saving."""
        return {
            **super().get_config(),
            "total_size": self.total_size,
            "p": self.p,
            "eps": self.eps,
            "seed": self.seed,
        }


SPARSITY_MASKS = (MagnitudeSparsityMask, RBSparsityMask)


def is_sparsity_mask(layer):
    return isinstance(layer, SPARSITY_MASKS)
