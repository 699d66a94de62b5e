"""Filter pruning settings, parsed and validated from NNCF's config format."""

import dataclasses
import logging

from tf_aat._errors import ConfigError, check_known_keys
from tf_aat._fields import boolean as _boolean
from tf_aat._fields import choice as _choice
from tf_aat._fields import number as _number
from tf_aat._fields import parse_scopes, tell_once

logger = logging.getLogger("tf_aat.pruning")


def _tell_once(key, message, *args):
    """Logs a deliberate difference from NNCF once per process."""
    tell_once(key, message, *args, logger="tf_aat.pruning")


SCHEDULES = ("exponential", "exponential_with_bias", "baseline")
IMPORTANCES = ("geometric_median", "L1", "L2")

_SECTION_KEYS = (
    "algorithm",
    "pruning_init",
    "params",
    "ignored_scopes",
    "target_scopes",
    "accuracy_aware_training",
    "compression_lr_multiplier",
)
_PARAMS_KEYS = (
    "schedule",
    "pruning_target",
    "pruning_flops_target",
    "pruning_steps",
    "num_init_steps",
    "weight_importance",
    "filter_importance",
    "prune_first_conv",
    "prune_downsample_convs",
    "prune_batch_norms",
    "all_weights",
    "maximal_pruning_level",
)


@dataclasses.dataclass(frozen=True)
class FilterPruningParams:
    """Validated `filter_pruning` settings; defaults follow NNCF."""

    pruning_init: float = 0.0
    schedule: str = "exponential"
    pruning_target: float = 0.5
    pruning_flops_target: float | None = None
    pruning_steps: int = 100
    num_init_steps: int = 0
    importance: str = "geometric_median"
    prune_first_conv: bool = False
    prune_downsample_convs: bool = False
    prune_batch_norms: bool = True
    all_weights: bool = False
    maximal_pruning_level: float = 0.9
    ignored_scopes: tuple = ()
    target_scopes: tuple = ()

    @property
    def target(self):
        """The level the schedule ends at: FLOPs reduction or filter level."""
        if self.pruning_flops_target is not None:
            return self.pruning_flops_target
        return self.pruning_target


def parse_filter_pruning(section, key_path):
    """Parses one `{"algorithm": "filter_pruning", ...}` section."""
    check_known_keys(section, _SECTION_KEYS, key_path)
    params = section.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{key_path}.params", "an object", params)
    params_path = f"{key_path}.params"
    check_known_keys(params, _PARAMS_KEYS, params_path)
    values = {}
    if "pruning_init" in section:
        values["pruning_init"] = _number(
            section["pruning_init"], f"{key_path}.pruning_init", 0.0, 1.0, low_open=False
        )
    if "schedule" in params:
        values["schedule"] = _choice(params["schedule"], SCHEDULES, f"{params_path}.schedule")
    for key in ("pruning_target", "pruning_flops_target", "maximal_pruning_level"):
        if key in params:
            values[key] = _number(params[key], f"{params_path}.{key}", 0.0, 1.0)
            if values[key] >= 1.0:
                raise ConfigError(
                    f"{params_path}.{key}",
                    "a number below 1.0 (at least one filter must stay)",
                    params[key],
                )
    for key in ("pruning_steps", "num_init_steps"):
        if key in params:
            values[key] = _number(params[key], f"{params_path}.{key}", 0, None, integer=True)
    if values.get("pruning_steps", 1) == 0 and values.get("schedule", "exponential") != "baseline":
        raise ConfigError(
            f"{params_path}.pruning_steps",
            "an integer >= 1 (0 only with the baseline schedule, which jumps to the target)",
            0,
        )
    if "weight_importance" in params and "filter_importance" in params:
        if params["weight_importance"] != params["filter_importance"]:
            raise ConfigError(
                f"{params_path}.filter_importance",
                "the same value as `weight_importance` (they are two names of one setting)",
                params["filter_importance"],
            )
    for key in ("filter_importance", "weight_importance"):
        if key in params:
            values["importance"] = _choice(params[key], IMPORTANCES, f"{params_path}.{key}")
    if "importance" not in values:
        _tell_once(
            "filter_importance",
            "%s.filter_importance is not set: tf_aat prunes by geometric median (FPGM), "
            'where NNCF\'s default is L2. Set "filter_importance": "L2" for NNCF\'s '
            "choice of filters.",
            params_path,
        )
    for key in ("prune_first_conv", "prune_downsample_convs", "prune_batch_norms", "all_weights"):
        if key in params:
            values[key] = _boolean(params[key], f"{params_path}.{key}")
    values["ignored_scopes"] = parse_scopes(
        section.get("ignored_scopes"), f"{key_path}.ignored_scopes"
    )
    values["target_scopes"] = parse_scopes(
        section.get("target_scopes"), f"{key_path}.target_scopes"
    )
    result = FilterPruningParams(**values)
    if result.pruning_init > result.target:
        # NNCF accepts it: its schedules cap the level at the target.
        logger.warning(
            "%s.pruning_init (%g) is above the pruning target (%g): as in NNCF, the "
            "schedule gives the target from the first pruning epoch.",
            key_path,
            result.pruning_init,
            result.target,
        )
    return result
