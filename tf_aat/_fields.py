"""Readers of config fields shared by every algorithm's parser: each raises
`ConfigError` with the key path, what was expected and what was received."""

import logging
import math

from tf_aat._errors import ConfigError

_told = set()


def tell_once(key, message, *args, logger="tf_aat"):
    """Logs a deliberate difference from NNCF once per process."""
    if key not in _told:
        _told.add(key)
        logging.getLogger(logger).warning(message, *args)


def number(
    value,
    key_path,
    low,
    high,
    *,
    integer=False,
    low_open=False,
    high_open=False,
    whole_floats=False,
):
    """A finite number in [low, high] (either end open); `whole_floats` reads 5.0 as
    the integer 5, as NNCF's schema did for epoch counts."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if integer and whole_floats and isinstance(value, float) and value.is_integer():
        ok_type = True
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(key_path, kind, value)
    if not math.isfinite(value):
        raise ConfigError(key_path, "a finite number", value)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        bracket = "(" if low_open else "["
        upper = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
        raise ConfigError(key_path, f"{kind} in {bracket}{low}, {upper}", value)
    return int(value) if integer else float(value)


def boolean(value, key_path):
    if not isinstance(value, bool):
        raise ConfigError(key_path, "true or false", value)
    return value


def parse_scopes(value, key_path):
    """Scopes are a layer-name pattern or a list of them."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key_path, "a layer-name pattern or a list of patterns", value)
    return tuple(value)


def choice(value, choices, key_path):
    if value not in choices:
        lowered = {c.lower(): c for c in choices}
        if isinstance(value, str) and value.lower() in lowered:
            return lowered[value.lower()]
        raise ConfigError(key_path, f"one of {list(choices)}", value)
    return value
