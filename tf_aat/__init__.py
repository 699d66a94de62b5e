"""tf_aat: accuracy-aware training-time compression for Keras 3."""

# First (it checks on import): a missing TensorFlow, an old Keras or another Keras
# backend is named here, before any module below fails on it.
from tf_aat import _requirements  # noqa: F401
from tf_aat._algorithms import Algorithm, CompressionPlan, register_algorithm, strip_model
from tf_aat._api import create_compressed_model
from tf_aat._callbacks import CompressionCallback
from tf_aat._config import CompressionConfig
from tf_aat._controller import (
    CompositeCompressionController,
    CompressionController,
    CompressionScheduler,
    RatedCompressionController,
)
from tf_aat._errors import ConfigError
from tf_aat._export import TFLiteExport, TFLiteExportError, export_tflite, tflite_ops
from tf_aat._graph import UnsupportedModelError
from tf_aat._layer_rules import LayerRule, register_layer_rule
from tf_aat._wrapper import CompressionWrapper
from tf_aat.accuracy_aware import (
    AccuracyAwareParams,
    AccuracyAwareResult,
    AccuracyAwareSearch,
)
from tf_aat.accuracy_aware._callback import AccuracyAwareCallback
from tf_aat.accuracy_aware._learning_rate import ScaledLearningRateSchedule
from tf_aat.accuracy_aware._runner import (
    AccuracyAwareTrainingLoop,
    create_accuracy_aware_training_loop,
)
from tf_aat.pruning._controller import FilterPruningController
from tf_aat.quantization import ActivationQuantizer, QuantizationController, WeightQuantizer
from tf_aat.sparsity import MagnitudeSparsityController, RBSparsityController

__version__ = "0.1.0"

__all__ = [
    "AccuracyAwareCallback",
    "AccuracyAwareParams",
    "AccuracyAwareResult",
    "AccuracyAwareSearch",
    "AccuracyAwareTrainingLoop",
    "ActivationQuantizer",
    "Algorithm",
    "CompositeCompressionController",
    "CompressionCallback",
    "CompressionConfig",
    "CompressionController",
    "CompressionPlan",
    "CompressionScheduler",
    "CompressionWrapper",
    "ConfigError",
    "FilterPruningController",
    "LayerRule",
    "MagnitudeSparsityController",
    "QuantizationController",
    "RBSparsityController",
    "RatedCompressionController",
    "ScaledLearningRateSchedule",
    "TFLiteExport",
    "TFLiteExportError",
    "UnsupportedModelError",
    "WeightQuantizer",
    "create_accuracy_aware_training_loop",
    "create_compressed_model",
    "export_tflite",
    "register_algorithm",
    "register_layer_rule",
    "strip_model",
    "tflite_ops",
]
