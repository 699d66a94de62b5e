"""Weight sparsity as NNCF trained it: `magnitude_sparsity` and `rb_sparsity`.

Both put an element mask on each conv, depthwise, separable and dense kernel
(a `CompressionWrapper` weight transform); the level (fraction of zeros) is
the controller's `compression_rate`, so the accuracy-aware search varies it.
Strip bakes the zeros into plain Keras layers.
"""

from tf_aat.sparsity import _algorithm  # noqa: F401 - registers both algorithms
from tf_aat.sparsity._controller import (
    MagnitudeSparsityController,
    RBSparsityController,
    SparsityController,
    SparsityStatistics,
)
from tf_aat.sparsity._layers import MagnitudeSparsityMask, RBSparsityMask
from tf_aat.sparsity._params import MagnitudeSparsityParams, RBSparsityParams, SparsityParams
from tf_aat.sparsity._schedule import SparsityScheduler

__all__ = [
    "MagnitudeSparsityController",
    "MagnitudeSparsityMask",
    "MagnitudeSparsityParams",
    "RBSparsityController",
    "RBSparsityMask",
    "RBSparsityParams",
    "SparsityController",
    "SparsityParams",
    "SparsityScheduler",
    "SparsityStatistics",
]
