"""Quantization settings, parsed and validated from NNCF's config format.

Only what TFLite's int8 kernels can run is accepted: 8 bits, symmetric
weights (zero point 0) and per-tensor activations. A setting outside that is
rejected here with the reason, rather than silently simulated in Keras and
then deployed differently.

NNCF's `preset` is accepted with NNCF's meaning: `"performance"` quantizes
weights and activations symmetrically, `"mixed"` weights symmetrically and
activations asymmetrically; an explicit `weights.mode` / `activations.mode`
wins over the preset. Both deploy as int8 TFLite (a symmetric activation
range is an int8 tensor with zero point 0). Without a preset or an
activation mode, activations are asymmetric (TFLite's own int8 spec, i.e.
`"mixed"`), where NNCF's default preset is `"performance"`.

NNCF's `overflow_fix` (7-bit weights for CPUs whose int8 dot products can
saturate) has no TFLite counterpart: it is accepted, and weights always use
the full int8 narrow range [-127, 127].
"""

import dataclasses
import logging

from tf_aat._errors import ConfigError, check_known_keys
from tf_aat._fields import boolean as _boolean
from tf_aat._fields import number as _number
from tf_aat._fields import parse_scopes, tell_once


def _tell_once(key, message, *args):
    tell_once(key, message, *args, logger="tf_aat.quantization")


logger = logging.getLogger("tf_aat.quantization")

PRESETS = {
    # NNCF's presets: (weights mode, activations mode).
    "performance": ("symmetric", "symmetric"),
    "mixed": ("symmetric", "asymmetric"),
}
OVERFLOW_FIX = ("enable", "disable", "first_layer_only")

RANGE_TYPES = ("min_max", "mean_min_max", "percentile", "mean_percentile", "threshold")

_SECTION_KEYS = (
    "algorithm",
    "weights",
    "activations",
    "initializer",
    "ignored_scopes",
    "target_scopes",
    "accuracy_aware_training",
    "compression_lr_multiplier",
    "export_to_onnx_standard_ops",
    "quantize_inputs",
    "quantize_outputs",
    "preset",
    "overflow_fix",
    "disable_saturation_fix",
)
_QUANTIZER_KEYS = ("mode", "bits", "per_channel", "signed", "narrow_range")
_INITIALIZER_KEYS = ("range", "batchnorm_adaptation")
_RANGE_KEYS = ("num_init_samples", "type", "params")
_RANGE_PARAMS_KEYS = ("min_percentile", "max_percentile")
_BN_KEYS = ("num_bn_adaptation_samples",)


@dataclasses.dataclass(frozen=True)
class QuantizerParams:
    """How one kind of tensor (weights or activations) is quantized."""

    mode: str
    per_channel: bool
    bits: int = 8


@dataclasses.dataclass(frozen=True)
class RangeInitParams:
    """How activation ranges are initialised from `init_data`."""

    num_init_samples: int = 256
    type: str = "mean_min_max"
    min_percentile: float = 0.1
    max_percentile: float = 99.9


@dataclasses.dataclass(frozen=True)
class QuantizationParams:
    """Validated `quantization` settings; defaults follow TFLite's int8 spec.

    Weights: per-channel symmetric, narrow range `[-127, 127]` (Dense kernels
    get one range per tensor, which is what the converter can carry into a
    FULLY_CONNECTED op). Activations: per-tensor asymmetric.
    """

    weights: QuantizerParams = QuantizerParams("symmetric", True)
    activations: QuantizerParams = QuantizerParams("asymmetric", False)
    range_init: RangeInitParams = RangeInitParams()
    num_bn_adaptation_samples: int = 2000
    quantize_inputs: bool = True
    ignored_scopes: tuple = ()
    target_scopes: tuple = ()
    key_path: str = "compression"
    preset: str | None = None
    overflow_fix: str | None = None


def _object(value, key_path):
    if not isinstance(value, dict):
        raise ConfigError(key_path, "an object", value)
    return value


def _quantizer(section, key_path, default, kind):
    section = _object(section, key_path)
    check_known_keys(section, _QUANTIZER_KEYS, key_path)
    mode = section.get("mode", default.mode)
    if mode not in ("symmetric", "asymmetric"):
        raise ConfigError(f"{key_path}.mode", "'symmetric' or 'asymmetric'", mode)
    per_channel = _boolean(
        section.get("per_channel", default.per_channel), f"{key_path}.per_channel"
    )
    bits = _number(section.get("bits", 8), f"{key_path}.bits", 2, 32, integer=True)
    if bits != 8:
        raise ConfigError(
            f"{key_path}.bits",
            "8 (TFLite's integer kernels run int8 tensors only)",
            bits,
            "Remove `bits` or set it to 8.",
        )
    if kind == "weights" and mode != "symmetric":
        raise ConfigError(
            f"{key_path}.mode",
            "'symmetric' (TFLite's int8 spec fixes the zero point of weights at 0, "
            "so an asymmetric weight range cannot be deployed)",
            mode,
        )
    if kind == "activations" and per_channel:
        raise ConfigError(
            f"{key_path}.per_channel",
            "false (TFLite quantizes activations with one range per tensor)",
            per_channel,
        )
    if "narrow_range" in section:
        expected = kind == "weights"
        if _boolean(section["narrow_range"], f"{key_path}.narrow_range") != expected:
            raise ConfigError(
                f"{key_path}.narrow_range",
                f"{str(expected).lower()} (TFLite's int8 spec: weights in [-127, 127], "
                "activations in [-128, 127])",
                section["narrow_range"],
            )
    if "signed" in section:
        _boolean(section["signed"], f"{key_path}.signed")
    return QuantizerParams(mode=mode, per_channel=per_channel, bits=bits)


def _range_init(section, key_path):
    section = _object(section, key_path)
    if isinstance(section, list):
        raise ConfigError(key_path, "one range object for the whole model", section)
    check_known_keys(section, _RANGE_KEYS, key_path)
    values = {}
    if "num_init_samples" in section:
        values["num_init_samples"] = _number(
            section["num_init_samples"], f"{key_path}.num_init_samples", 0, None, integer=True
        )
    if "type" in section:
        kind = section["type"]
        if kind not in RANGE_TYPES:
            raise ConfigError(f"{key_path}.type", f"one of {list(RANGE_TYPES)}", kind)
        values["type"] = kind
    params = _object(section.get("params", {}), f"{key_path}.params")
    check_known_keys(params, _RANGE_PARAMS_KEYS, f"{key_path}.params")
    for key in _RANGE_PARAMS_KEYS:
        if key in params:
            values[key] = _number(params[key], f"{key_path}.params.{key}", 0.0, 100.0)
    result = RangeInitParams(**values)
    if result.min_percentile >= result.max_percentile:
        raise ConfigError(
            f"{key_path}.params.min_percentile",
            f"a value below max_percentile ({result.max_percentile})",
            result.min_percentile,
        )
    return result


def parse_quantization(section, key_path):
    """Parses one `{"algorithm": "quantization", ...}` section."""
    check_known_keys(section, _SECTION_KEYS, key_path)
    defaults = QuantizationParams()
    weights_default, activations_default = defaults.weights, defaults.activations
    preset = section.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ConfigError(f"{key_path}.preset", f"one of {sorted(PRESETS)}", preset)
        weights_mode, activations_mode = PRESETS[preset]
        weights_default = dataclasses.replace(weights_default, mode=weights_mode)
        activations_default = dataclasses.replace(activations_default, mode=activations_mode)
    elif not isinstance(section.get("activations"), dict) or ("mode" not in section["activations"]):
        _tell_once(
            "preset",
            "%s has no `preset`: tf_aat quantizes activations asymmetrically (TFLite's int8 "
            'spec, NNCF\'s "mixed"), where NNCF\'s default preset "performance" is '
            'symmetric. Set "preset": "performance" for NNCF\'s choice.',
            key_path,
        )
    overflow_fix = section.get("overflow_fix")
    if overflow_fix is not None:
        if overflow_fix not in OVERFLOW_FIX:
            raise ConfigError(
                f"{key_path}.overflow_fix", f"one of {list(OVERFLOW_FIX)}", overflow_fix
            )
        if overflow_fix != "disable":
            _tell_once(
                "overflow_fix",
                '%s.overflow_fix="%s" has no effect: TFLite has no 7-bit weight overflow fix, '
                "so weights are quantized to the full int8 range [-127, 127].",
                key_path,
                overflow_fix,
            )
    if "disable_saturation_fix" in section:
        # NNCF's earlier name for the overflow fix (true: no fix), used by its TF
        # sparsity + int8 samples; TFLite has no such fix either way.
        _boolean(section["disable_saturation_fix"], f"{key_path}.disable_saturation_fix")
    weights = _quantizer(
        section.get("weights", {}), f"{key_path}.weights", weights_default, "weights"
    )
    activations = _quantizer(
        section.get("activations", {}),
        f"{key_path}.activations",
        activations_default,
        "activations",
    )
    initializer = _object(section.get("initializer", {}), f"{key_path}.initializer")
    check_known_keys(initializer, _INITIALIZER_KEYS, f"{key_path}.initializer")
    range_init = defaults.range_init
    if "range" in initializer:
        range_init = _range_init(initializer["range"], f"{key_path}.initializer.range")
    bn_samples = defaults.num_bn_adaptation_samples
    if "batchnorm_adaptation" in initializer:
        bn_path = f"{key_path}.initializer.batchnorm_adaptation"
        bn = _object(initializer["batchnorm_adaptation"], bn_path)
        check_known_keys(bn, _BN_KEYS, bn_path)
        if "num_bn_adaptation_samples" in bn:
            bn_samples = _number(
                bn["num_bn_adaptation_samples"],
                f"{bn_path}.num_bn_adaptation_samples",
                0,
                None,
                integer=True,
            )
    if "quantize_outputs" in section:
        _boolean(section["quantize_outputs"], f"{key_path}.quantize_outputs")
    quantize_inputs = _boolean(section.get("quantize_inputs", True), f"{key_path}.quantize_inputs")
    return QuantizationParams(
        weights=weights,
        activations=activations,
        range_init=range_init,
        num_bn_adaptation_samples=bn_samples,
        quantize_inputs=quantize_inputs,
        ignored_scopes=parse_scopes(section.get("ignored_scopes"), f"{key_path}.ignored_scopes"),
        target_scopes=parse_scopes(section.get("target_scopes"), f"{key_path}.target_scopes"),
        key_path=key_path,
        preset=preset,
        overflow_fix=overflow_fix,
    )
