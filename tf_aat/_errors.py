"""Error types and message helpers shared by the whole package."""

import difflib


class ConfigError(ValueError):
    """A compression config that cannot be used.

    The message names the key path (for example
    `compression[0].params.schedule`), what was expected, what was received
    and, for unknown keys, the closest valid key.
    """

    def __init__(self, key_path, expected, received, hint=None):
        self.key_path = key_path
        self.expected = expected
        self.received = received
        self.hint = hint
        message = f"Invalid config at `{key_path}`: expected {expected}."
        if hint:
            message += f" {hint}"
        message += f" Received: {key_path}={received!r}"
        super().__init__(message)


def closest_match(name, candidates):
    """Returns the candidate closest to `name`, or None if none is close.

    Candidates that are not strings (a dict from Python may have any keys) are
    compared by their `str()`, and the candidate itself is returned.
    """
    by_text = {}
    for candidate in candidates:
        by_text.setdefault(str(candidate), candidate)
    matches = difflib.get_close_matches(str(name), list(by_text), n=1, cutoff=0.5)
    return by_text[matches[0]] if matches else None


def check_known_keys(section, allowed, key_path):
    """Raises `ConfigError` for the first key of `section` not in `allowed`."""
    for key in section:
        if key not in allowed:
            suggestion = closest_match(key, allowed)
            hint = f"Did you mean `{suggestion}`?" if suggestion else None
            raise ConfigError(
                key_path=f"{key_path}.{key}" if key_path else key,
                expected=f"one of the keys {sorted(allowed)}",
                received=key,
                hint=hint,
            )
