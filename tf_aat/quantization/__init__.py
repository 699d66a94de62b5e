"""8-bit quantization-aware training that deploys as a fully int8 TFLite model."""

from tf_aat.quantization._algorithm import QuantizationPlan, quantization_plan
from tf_aat.quantization._controller import QuantizationController, QuantizationStatistics
from tf_aat.quantization._params import QuantizationParams, QuantizerParams, RangeInitParams
from tf_aat.quantization._quantizers import ActivationQuantizer, WeightQuantizer

__all__ = [
    "ActivationQuantizer",
    "QuantizationController",
    "QuantizationParams",
    "QuantizationPlan",
    "QuantizationStatistics",
    "QuantizerParams",
    "RangeInitParams",
    "WeightQuantizer",
    "quantization_plan",
]
