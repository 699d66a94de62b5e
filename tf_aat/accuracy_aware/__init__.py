"""Accuracy-aware training: search the highest compression rate in budget.

The search (`AccuracyAwareSearch`) is pure Python; the Keras callback and
the loop runner drive it. Names that need Keras are imported on first use,
so `import tf_aat.accuracy_aware` alone does not import TensorFlow.
"""

import importlib

from tf_aat.accuracy_aware._params import (
    AccuracyAwareParams,
    find_accuracy_aware_section,
    parse_accuracy_aware_training,
)
from tf_aat.accuracy_aware._result import AccuracyAwareResult
from tf_aat.accuracy_aware._search import AccuracyAwareSearch, Decision, checkpoint_key

_LAZY = {
    "AccuracyAwareCallback": "tf_aat.accuracy_aware._callback",
    "AccuracyAwareTrainingLoop": "tf_aat.accuracy_aware._runner",
    "create_accuracy_aware_training_loop": "tf_aat.accuracy_aware._runner",
    "ScaledLearningRateSchedule": "tf_aat.accuracy_aware._learning_rate",
}

__all__ = [
    "AccuracyAwareCallback",
    "AccuracyAwareParams",
    "AccuracyAwareResult",
    "AccuracyAwareSearch",
    "AccuracyAwareTrainingLoop",
    "Decision",
    "ScaledLearningRateSchedule",
    "checkpoint_key",
    "create_accuracy_aware_training_loop",
    "find_accuracy_aware_section",
    "parse_accuracy_aware_training",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
