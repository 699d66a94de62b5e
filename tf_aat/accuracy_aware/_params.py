"""Parsing and validation of the `accuracy_aware_training` config section.

Two layouts are accepted and both end up as one `AccuracyAwareParams`:

- `"seed"`: the section sits inside an algorithm section of `compression`
  and holds the search parameters directly (`maximal_accuracy_degradation`,
  `compression_rate_step`, `step_reduction_factor`, ...).
- `"nncf"`: NNCF 2.1+'s top-level section
  `{"mode": "adaptive_compression_level" | "early_exit", "params": {...}}`.

This module imports nothing from TensorFlow or Keras.
"""

import dataclasses
import logging
import math

from tf_aat._errors import ConfigError, check_known_keys

logger = logging.getLogger("tf_aat.accuracy_aware")

ADAPTIVE_COMPRESSION_LEVEL = "adaptive_compression_level"
EARLY_EXIT = "early_exit"
MODES = (ADAPTIVE_COMPRESSION_LEVEL, EARLY_EXIT)
LAYOUTS = ("seed", "nncf")

# Relative tolerance of the criterion, so that for example an accuracy of
# exactly 0.81 passes a budget computed as 0.9 * (1 - 10 / 100).
_CRITERION_TOLERANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class AccuracyAwareParams:
    """Validated parameters of the accuracy-aware search.

    Attributes:
        mode: `"adaptive_compression_level"` (search the highest rate within
            the budget) or `"early_exit"` (train with the user's schedule and
            stop once the target rate meets the budget).
        maximal_relative_accuracy_degradation: allowed drop in percent of the
            uncompressed metric, or None when the absolute one is used.
        maximal_absolute_accuracy_degradation: allowed drop in the metric's
            own units, or None when the relative one is used.
        initial_training_phase_epochs: epochs trained with the user's
            compression schedule before the search starts.
        patience_epochs: epochs each rate chosen by the search is trained.
        minimal_compression_rate_step: the search stops once the step falls
            below this value.
        compression_rate_step: the first step of the search.
        step_reduction_factor: the step is multiplied by this each time the
            search changes direction.
        lr_reduction_factor: the learning rate is multiplied by this each
            time the search changes direction.
        maximal_total_epochs: hard limit on the number of epochs trained.
        maximal_compression_rate: highest rate the search may select; the
            controller's own maximum (if lower) wins.
        minimal_compression_rate: lowest rate the search may select.
        advance_on_pass: leave a rate as soon as one of its epochs meets the
            criterion instead of training the remaining patience epochs (as
            NNCF 2.4 did). Saves up to `patience_epochs - 1` epochs per
            passing rate, at the cost of less fine-tuning of the rates the
            search goes on from.
        keep_checkpoints: how many rate checkpoints stay in `log_dir`: the
            best one (what the search restores and returns) and the most
            recently saved others; older ones are deleted. None keeps all.
    """

    mode: str = ADAPTIVE_COMPRESSION_LEVEL
    maximal_relative_accuracy_degradation: float | None = 1.0
    maximal_absolute_accuracy_degradation: float | None = None
    initial_training_phase_epochs: int = 0
    patience_epochs: int = 1
    minimal_compression_rate_step: float = 0.025
    compression_rate_step: float = 0.1
    step_reduction_factor: float = 0.5
    lr_reduction_factor: float = 0.5
    maximal_total_epochs: int = 10000
    maximal_compression_rate: float = 1.0
    minimal_compression_rate: float = 0.0
    advance_on_pass: bool = False
    keep_checkpoints: int | None = None

    def accuracy_budget(self, uncompressed_metric, lower_is_better=False):
        """Returns the worst metric value that meets the criterion.

        With `lower_is_better` (a loss-like metric) the budget lies above
        the uncompressed metric: the allowed degradation is an increase.
        """
        uncompressed_metric = float(uncompressed_metric)
        if self.maximal_absolute_accuracy_degradation is not None:
            allowed = self.maximal_absolute_accuracy_degradation
        else:
            allowed = abs(uncompressed_metric) * self.maximal_relative_accuracy_degradation / 100.0
        if lower_is_better:
            return uncompressed_metric + allowed
        return uncompressed_metric - allowed

    def meets_criterion(self, metric, uncompressed_metric, lower_is_better=False):
        """Returns whether `metric` is within the budget.

        A metric that is not a finite number (NaN, +inf, -inf) never passes.
        """
        if metric is None or not math.isfinite(float(metric)):
            return False
        budget = self.accuracy_budget(uncompressed_metric, lower_is_better)
        tolerance = _CRITERION_TOLERANCE * max(1.0, abs(budget))
        if lower_is_better:
            return float(metric) <= budget + tolerance
        return float(metric) >= budget - tolerance

    def check_metric_scale(self, uncompressed_metric):
        """Warns when the budget and the metric look like different scales."""
        absolute = self.maximal_absolute_accuracy_degradation
        if absolute is None or uncompressed_metric is None:
            return
        uncompressed_metric = float(uncompressed_metric)
        if absolute > 1.0 and abs(uncompressed_metric) <= 1.0:
            logger.warning(
                "The uncompressed metric (%g) looks like a 0..1 value but "
                "maximal_absolute_accuracy_degradation=%g looks like a 0..100 "
                "value: the budget %g is below any reachable metric, so every "
                "rate will pass. Give the degradation in the metric's own "
                "units (e.g. 0.01 for one point of Keras accuracy).",
                uncompressed_metric,
                absolute,
                self.accuracy_budget(uncompressed_metric),
            )
        elif absolute >= abs(uncompressed_metric) > 0:
            logger.warning(
                "maximal_absolute_accuracy_degradation=%g is not smaller than the "
                "uncompressed metric %g: every rate will pass.",
                absolute,
                uncompressed_metric,
            )

    def to_dict(self):
        """The settings as a plain dict (field name to value), as saved with the resume state."""
        return dataclasses.asdict(self)


_SHARED_KEYS = (
    "initial_training_phase_epochs",
    "patience_epochs",
    "minimal_compression_rate_step",
    "lr_reduction_factor",
    "maximal_total_epochs",
    "maximal_compression_rate",
    "minimal_compression_rate",
    "advance_on_pass",
    "keep_checkpoints",
)
_SEED_KEYS = _SHARED_KEYS + (
    "maximal_accuracy_degradation",
    "compression_rate_step",
    "step_reduction_factor",
    # Accepted so a seed-layout section can also choose early exit.
    "mode",
)
_NNCF_PARAMS_KEYS = _SHARED_KEYS + (
    "maximal_relative_accuracy_degradation",
    "maximal_absolute_accuracy_degradation",
    "initial_compression_rate_step",
    "compression_rate_step_reduction_factor",
)


def _path(key_path, key):
    return f"{key_path}.{key}" if key_path else key


def _number(
    section,
    key,
    key_path,
    default,
    low=None,
    high=None,
    open_low=False,
    open_high=False,
):
    value = section.get(key, default)
    path = _path(key_path, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "a number", value)
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(path, "a finite number", value)
    left = "(" if open_low else "["
    right = ")" if open_high else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and (value >= high if open_high else value > high)
    if too_low or too_high:
        raise ConfigError(path, f"a number in {interval}", value)
    return value


def _integer(section, key, key_path, default, low=0):
    value = section.get(key, default)
    path = _path(key_path, key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "an integer number of epochs", value)
    if value < low:
        raise ConfigError(path, f"an integer >= {low}", value)
    return value


def _boolean(section, key, key_path, default):
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(_path(key_path, key), "true or false", value)
    return value


def _keep_checkpoints(section, key_path):
    value = section.get("keep_checkpoints")
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            _path(key_path, "keep_checkpoints"),
            "an integer >= 1 (how many rate checkpoints stay in log_dir; the best one is "
            "always kept) or null (keep all)",
            value,
        )
    return value


def _shared(section, key_path):
    values = {
        "initial_training_phase_epochs": _integer(
            section, "initial_training_phase_epochs", key_path, 0
        ),
        "patience_epochs": _integer(section, "patience_epochs", key_path, 1, low=1),
        "minimal_compression_rate_step": _number(
            section,
            "minimal_compression_rate_step",
            key_path,
            0.025,
            low=0,
            open_low=True,
        ),
        "lr_reduction_factor": _number(
            section, "lr_reduction_factor", key_path, 0.5, low=0, high=1, open_low=True
        ),
        "maximal_total_epochs": _integer(section, "maximal_total_epochs", key_path, 10000, low=1),
        "maximal_compression_rate": _number(
            section, "maximal_compression_rate", key_path, 1.0, low=0, high=1
        ),
        "minimal_compression_rate": _number(
            section, "minimal_compression_rate", key_path, 0.0, low=0, high=1
        ),
        "advance_on_pass": _boolean(section, "advance_on_pass", key_path, False),
        "keep_checkpoints": _keep_checkpoints(section, key_path),
    }
    if values["minimal_compression_rate"] > values["maximal_compression_rate"]:
        raise ConfigError(
            _path(key_path, "minimal_compression_rate"),
            f"a rate not above maximal_compression_rate ({values['maximal_compression_rate']})",
            values["minimal_compression_rate"],
        )
    return values


def _steps(section, key_path, step_key, factor_key):
    """The first rate step and its reduction factor, under each layout's own names."""
    return {
        "compression_rate_step": _number(
            section, step_key, key_path, 0.1, low=0, high=1, open_low=True
        ),
        "step_reduction_factor": _number(
            section, factor_key, key_path, 0.5, low=0, high=1, open_low=True, open_high=True
        ),
    }


def _mode(value, key_path):
    if value not in MODES:
        raise ConfigError(_path(key_path, "mode"), f"one of {list(MODES)}", value)
    return value


def _parse_seed(section, key_path):
    check_known_keys(section, _SEED_KEYS, key_path)
    values = _shared(section, key_path)
    values["mode"] = _mode(section.get("mode", ADAPTIVE_COMPRESSION_LEVEL), key_path)
    values["maximal_relative_accuracy_degradation"] = _number(
        section, "maximal_accuracy_degradation", key_path, 1.0, low=0, high=100
    )
    values["maximal_absolute_accuracy_degradation"] = None
    values.update(_steps(section, key_path, "compression_rate_step", "step_reduction_factor"))
    return values


def _parse_nncf(section, key_path):
    check_known_keys(section, ("mode", "params"), key_path)
    if "mode" not in section:
        raise ConfigError(
            _path(key_path, "mode"),
            f"one of {list(MODES)}",
            None,
            hint="NNCF's layout needs a `mode` next to `params`.",
        )
    mode = _mode(section["mode"], key_path)
    params = section.get("params", {})
    params_path = _path(key_path, "params")
    if not isinstance(params, dict):
        raise ConfigError(params_path, "a JSON object", params)
    check_known_keys(params, _NNCF_PARAMS_KEYS, params_path)
    values = _shared(params, params_path)
    values["mode"] = mode
    relative = "maximal_relative_accuracy_degradation" in params
    absolute = "maximal_absolute_accuracy_degradation" in params
    if relative and absolute:
        raise ConfigError(
            _path(params_path, "maximal_absolute_accuracy_degradation"),
            "only one of maximal_relative_accuracy_degradation and "
            "maximal_absolute_accuracy_degradation",
            params["maximal_absolute_accuracy_degradation"],
            hint="Remove one of the two.",
        )
    if not relative and not absolute:
        raise ConfigError(
            _path(params_path, "maximal_relative_accuracy_degradation"),
            "maximal_relative_accuracy_degradation (percent) or "
            "maximal_absolute_accuracy_degradation (metric units)",
            None,
            hint="Add one of the two.",
        )
    values["maximal_relative_accuracy_degradation"] = (
        _number(params, "maximal_relative_accuracy_degradation", params_path, None, low=0, high=100)
        if relative
        else None
    )
    values["maximal_absolute_accuracy_degradation"] = (
        _number(params, "maximal_absolute_accuracy_degradation", params_path, None, low=0)
        if absolute
        else None
    )
    values.update(
        _steps(
            params,
            params_path,
            "initial_compression_rate_step",
            "compression_rate_step_reduction_factor",
        )
    )
    return values


def parse_accuracy_aware_training(section, key_path="accuracy_aware_training", layout=None):
    """Validates an `accuracy_aware_training` section.

    Args:
        section: the section, a dict.
        key_path: where the section is in the config, used in errors.
        layout: `"seed"` (keys directly in the section, found inside an
            algorithm section), `"nncf"` (`{"mode": ..., "params": {...}}`)
            or None to pick from the keys (`"nncf"` when `mode` or
            `params` is present with nothing else of the seed's).

    Returns:
        An `AccuracyAwareParams`.

    Raises:
        ConfigError: naming the key path, what was expected and received.
    """
    if isinstance(section, AccuracyAwareParams):
        return section
    if not isinstance(section, dict):
        raise ConfigError(key_path, "a JSON object", section)
    if layout is None:
        seed_only = set(section) & (set(_SEED_KEYS) - {"mode"})
        layout = "nncf" if "params" in section or ("mode" in section and not seed_only) else "seed"
    if layout not in LAYOUTS:
        raise ValueError(f"`layout` must be one of {list(LAYOUTS)}. Received: layout={layout!r}")
    if layout == "seed":
        values = _parse_seed(section, key_path)
    else:
        values = _parse_nncf(section, key_path)
    return AccuracyAwareParams(**values)


def find_accuracy_aware_section(config, key_path=""):
    """Finds and parses the accuracy-aware section of a whole config dict.

    Looks for a top-level `accuracy_aware_training` (NNCF's layout) and for
    one inside an algorithm section of `compression` (the seed's layout;
    `compression` may be one section or a list). Returns None if there is
    none; raises `ConfigError` if there is more than one.
    """
    found = []
    if "accuracy_aware_training" in config:
        section = config["accuracy_aware_training"]
        # Top level is NNCF's place, but a seed-style section is accepted
        # there too: the layout is picked from the keys.
        found.append((section, _path(key_path, "accuracy_aware_training"), None))
    compression = config.get("compression")
    if isinstance(compression, dict):
        algorithms = [(compression, _path(key_path, "compression"))]
    elif isinstance(compression, (list, tuple)):
        algorithms = [
            (item, f"{_path(key_path, 'compression')}[{index}]")
            for index, item in enumerate(compression)
        ]
    else:
        algorithms = []
    for algorithm, path in algorithms:
        if isinstance(algorithm, dict) and "accuracy_aware_training" in algorithm:
            found.append(
                (
                    algorithm["accuracy_aware_training"],
                    f"{path}.accuracy_aware_training",
                    None,
                )
            )
    if not found:
        return None
    if len(found) > 1:
        raise ConfigError(
            found[1][1],
            "a single accuracy_aware_training section",
            [path for _, path, _ in found],
            hint="The search varies one compression rate; keep one section.",
        )
    section, path, layout = found[0]
    return parse_accuracy_aware_training(section, path, layout)


__all__ = [
    "AccuracyAwareParams",
    "find_accuracy_aware_section",
    "parse_accuracy_aware_training",
]
