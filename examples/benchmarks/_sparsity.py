"""How sparse a stripped model is: the fraction of zeros in its conv and Dense kernels."""

import numpy as np

KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")  # conv and dense weights


def zero_fraction(model):
    """Fraction of zeros over the conv and dense kernels of `model` (a stripped model)."""
    zeros = total = 0
    for weight in model.weights:
        if weight.name in KERNELS:
            kernel = np.asarray(weight)
            zeros += int(np.sum(kernel == 0))
            total += kernel.size
    return zeros / total
