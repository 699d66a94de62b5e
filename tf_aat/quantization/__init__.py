"""8-bit quantization-aware training that deploys as a fully int8 TFLite model."""

from tf_aat import _algorithms
from tf_aat.quantization import (
    _bias,  # noqa: F401 - registers the bias on TFLite's int32 grid
    _convolution,  # noqa: F401 - registers the QAT convolutions
    _dense,  # noqa: F401 - registers the QAT Dense
)
from tf_aat.quantization._algorithm import QuantizationPlan, quantization_plan
from tf_aat.quantization._controller import QuantizationController, QuantizationStatistics
from tf_aat.quantization._params import QuantizationParams, QuantizerParams, RangeInitParams
from tf_aat.quantization._quantizers import (
    ActivationQuantizer,
    FixedRangeQuantizer,
    WeightQuantizer,
)

__all__ = [
    "ActivationQuantizer",
    "FixedRangeQuantizer",
    "QuantizationController",
    "QuantizationParams",
    "QuantizationPlan",
    "QuantizationStatistics",
    "QuantizerParams",
    "RangeInitParams",
    "WeightQuantizer",
    "quantization_plan",
]


def _controller(compressed, params, plan, init_data):
    return plan.make_controller(compressed, init_data)


def _parse(section, key_path):
    from tf_aat.quantization._params import parse_quantization

    return parse_quantization(section, key_path)


# Quantizers see the masked weights, so quantization comes after pruning; its
# quantizers stay in the stripped model (export turns them into int8 ops).
_algorithms.register_algorithm(
    _algorithms.Algorithm(
        name="quantization",
        parse=_parse,
        params_type=QuantizationParams,
        plan=quantization_plan,
        controller=_controller,
        order=10,
    )
)
