"""`magnitude_sparsity` and `rb_sparsity` settings, parsed from NNCF's config format.

Keys and defaults follow NNCF 2.x (`nncf/config/schemata/algo/sparsity.py` and
`nncf/common/sparsity/schedulers.py`): `sparsity_init` 0, `sparsity_target`
0.5, `sparsity_target_epoch` 90, `sparsity_freeze_epoch` 100, schedule
`polynomial` for magnitude and `exponential` for RB, `power` 0.9, `concave`
true, `multistep_steps` [90], `multistep_sparsity_levels` [0.1, 0.5], the
adaptive schedule's `step` 0.05, `eps` 0.03, `patience` 1, level setting mode
`global`, weight importance `normed_abs`.
"""

import dataclasses
import logging

from tf_aat._errors import ConfigError, check_known_keys
from tf_aat._fields import boolean as _boolean
from tf_aat._fields import number, parse_scopes

logger = logging.getLogger("tf_aat.sparsity")

SCHEDULES = ("polynomial", "exponential", "adaptive", "multistep")
MODES = ("global", "local")
IMPORTANCES = ("normed_abs", "abs")

_SECTION_KEYS = (
    "algorithm",
    "sparsity_init",
    "params",
    "initializer",
    "ignored_scopes",
    "target_scopes",
    "accuracy_aware_training",
    "compression_lr_multiplier",
)
_PARAMS_KEYS = (
    "schedule",
    "power",
    "concave",
    "patience",
    "step",
    "eps",
    "sparsity_target",
    "sparsity_target_epoch",
    "sparsity_freeze_epoch",
    "update_per_optimizer_step",
    "steps_per_epoch",
    "multistep_steps",
    "multistep_sparsity_levels",
    "sparsity_level_setting_mode",
    "weight_importance",
)
_INITIALIZER_KEYS = ("batchnorm_adaptation",)


@dataclasses.dataclass(frozen=True)
class SparsityParams:
    """Validated sparsity settings (shared by both algorithms); defaults follow NNCF."""

    sparsity_init: float = 0.0
    schedule: str = "polynomial"
    power: float = 0.9
    concave: bool = True
    patience: int = 1
    step: float = 0.05
    eps: float = 0.03
    sparsity_target: float = 0.5
    sparsity_target_epoch: int = 90
    sparsity_freeze_epoch: int = 100
    update_per_optimizer_step: bool = False
    steps_per_epoch: int | None = None
    multistep_steps: tuple = (90,)
    multistep_sparsity_levels: tuple = (0.1, 0.5)
    mode: str = "global"
    weight_importance: str = "normed_abs"
    ignored_scopes: tuple = ()
    target_scopes: tuple = ()

    @property
    def target(self):
        """The level the schedule ends at (multistep: its last level, as in NNCF)."""
        if self.schedule == "multistep":
            return self.multistep_sparsity_levels[-1]
        return self.sparsity_target


@dataclasses.dataclass(frozen=True)
class MagnitudeSparsityParams(SparsityParams):
    """`magnitude_sparsity` settings."""


@dataclasses.dataclass(frozen=True)
class RBSparsityParams(SparsityParams):
    """`rb_sparsity` settings (NNCF's default schedule for RB is `exponential`)."""

    schedule: str = "exponential"


def _number(value, key_path, low, high, **bounds):
    return number(value, key_path, low, high, whole_floats=True, **bounds)


def _choice(value, choices, key_path):
    if value in choices:
        return value
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    raise ConfigError(key_path, f"one of {list(choices)}", value)


def _number_list(value, key_path, allow_empty=False, **bounds):
    if not isinstance(value, (list, tuple)) or not (value or allow_empty):
        raise ConfigError(key_path, "a non-empty list of numbers", value)
    return tuple(_number(v, f"{key_path}[{i}]", **bounds) for i, v in enumerate(value))


def _parse(section, key_path, params_type):
    check_known_keys(section, _SECTION_KEYS, key_path)
    params = section.get("params", {})
    params_path = f"{key_path}.params"
    if not isinstance(params, dict):
        raise ConfigError(params_path, "an object", params)
    check_known_keys(params, _PARAMS_KEYS, params_path)
    initializer = section.get("initializer", {})
    if not isinstance(initializer, dict):
        raise ConfigError(f"{key_path}.initializer", "an object", initializer)
    check_known_keys(initializer, _INITIALIZER_KEYS, f"{key_path}.initializer")
    if "compression_lr_multiplier" in section:
        _number(
            section["compression_lr_multiplier"], f"{key_path}.compression_lr_multiplier", 0, None
        )
        logger.warning(
            "%s.compression_lr_multiplier is accepted and has no effect in tf_aat.", key_path
        )
    values = {}
    if "sparsity_init" in section:
        values["sparsity_init"] = _number(
            section["sparsity_init"], f"{key_path}.sparsity_init", 0.0, 1.0, high_open=True
        )
    if "schedule" in params:
        values["schedule"] = _choice(params["schedule"], SCHEDULES, f"{params_path}.schedule")
    for key in ("power", "step", "eps"):
        if key in params:
            values[key] = _number(params[key], f"{params_path}.{key}", 0.0, None)
    if "sparsity_target" in params:
        values["sparsity_target"] = _number(
            params["sparsity_target"], f"{params_path}.sparsity_target", 0.0, 1.0, high_open=True
        )
    for key in ("sparsity_target_epoch", "sparsity_freeze_epoch", "patience"):
        if key in params:
            values[key] = _number(params[key], f"{params_path}.{key}", 0, None, integer=True)
    if "steps_per_epoch" in params and params["steps_per_epoch"] is not None:
        values["steps_per_epoch"] = _number(
            params["steps_per_epoch"], f"{params_path}.steps_per_epoch", 1, None, integer=True
        )
    for key in ("concave", "update_per_optimizer_step"):
        if key in params:
            values[key] = _boolean(params[key], f"{params_path}.{key}")
    if "multistep_steps" in params:
        steps = _number_list(
            params["multistep_steps"],
            f"{params_path}.multistep_steps",
            allow_empty=True,
            low=0,
            high=None,
            integer=True,
        )
        values["multistep_steps"] = tuple(sorted(steps))  # NNCF sorts them
    if "multistep_sparsity_levels" in params:
        values["multistep_sparsity_levels"] = _number_list(
            params["multistep_sparsity_levels"],
            f"{params_path}.multistep_sparsity_levels",
            low=0.0,
            high=1.0,
            high_open=True,
        )
    if "sparsity_level_setting_mode" in params:
        values["mode"] = _choice(
            params["sparsity_level_setting_mode"],
            MODES,
            f"{params_path}.sparsity_level_setting_mode",
        )
    if "weight_importance" in params:
        values["weight_importance"] = _choice(
            params["weight_importance"], IMPORTANCES, f"{params_path}.weight_importance"
        )
    values["ignored_scopes"] = parse_scopes(
        section.get("ignored_scopes"), f"{key_path}.ignored_scopes"
    )
    values["target_scopes"] = parse_scopes(
        section.get("target_scopes"), f"{key_path}.target_scopes"
    )
    result = params_type(**values)
    if result.schedule == "multistep":
        steps, levels = result.multistep_steps, result.multistep_sparsity_levels
        if len(levels) != len(steps) + 1:
            raise ConfigError(
                f"{params_path}.multistep_sparsity_levels",
                f"one level more than `multistep_steps` has steps ({len(steps)} steps, so "
                f"{len(steps) + 1} levels: the first applies before the first step)",
                list(levels),
            )
    if result.update_per_optimizer_step and result.schedule != "polynomial":
        raise ConfigError(
            f"{params_path}.update_per_optimizer_step",
            "false unless the schedule is `polynomial` (NNCF updates per optimizer step "
            f"only there; schedule: {result.schedule!r})",
            True,
        )
    if params_type is RBSparsityParams and "weight_importance" in params:
        raise ConfigError(
            f"{params_path}.weight_importance",
            "no `weight_importance` for rb_sparsity (its masks are learned; the key "
            "belongs to magnitude_sparsity)",
            params["weight_importance"],
        )
    return result


def parse_magnitude_sparsity(section, key_path):
    """Parses one `{"algorithm": "magnitude_sparsity", ...}` section."""
    return _parse(section, key_path, MagnitudeSparsityParams)


def parse_rb_sparsity(section, key_path):
    """Parses one `{"algorithm": "rb_sparsity", ...}` section."""
    return _parse(section, key_path, RBSparsityParams)
