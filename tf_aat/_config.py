"""`CompressionConfig`: NNCF's JSON config format, validated before training."""

import copy
import json
import os

from tf_aat import _algorithms
from tf_aat._errors import ConfigError, closest_match


def _parse_accuracy_aware(section, key_path, layout):
    from tf_aat.accuracy_aware._params import parse_accuracy_aware_training

    return parse_accuracy_aware_training(section, key_path, layout)


class CompressionConfig:
    """A validated compression config in NNCF's format.

    Keys that sample scripts keep beside the compression settings (`model`,
    `dataset`, `batch_size`, `epochs`, ...) are kept and can be read with
    `config.get(key)`; only `compression` and `accuracy_aware_training` are
    interpreted.

    Example:

    ```python
    config = tf_aat.CompressionConfig.from_dict(
        {"compression": {"algorithm": "filter_pruning",
                         "params": {"pruning_target": 0.4}}}
    )
    config.algorithms[0].pruning_target  # 0.4
    ```
    """

    def __init__(self, algorithms, accuracy_aware_training, raw, accuracy_aware_algorithm=None):
        self.algorithms = tuple(algorithms)
        self.accuracy_aware_training = accuracy_aware_training
        # The algorithm whose section holds `accuracy_aware_training` (seed layout).
        self.accuracy_aware_algorithm = accuracy_aware_algorithm
        self._raw = raw

    @classmethod
    def from_dict(cls, config):
        """Validates `config` (a dict) and returns a `CompressionConfig`."""
        if isinstance(config, CompressionConfig):
            return config
        if not isinstance(config, dict):
            raise ConfigError("<root>", "a JSON object (dict)", type(config).__name__)
        raw = copy.deepcopy(config)
        if "compression" not in raw:
            suggestion = closest_match("compression", raw.keys())
            hint = (
                f"Did you mean `compression` instead of `{suggestion}`?"
                if suggestion
                else "Add a `compression` section, e.g. "
                '{"compression": {"algorithm": "filter_pruning"}}.'
            )
            raise ConfigError("compression", "a `compression` section", None, hint)
        sections = raw["compression"]
        listed = isinstance(sections, list)
        if isinstance(sections, dict):
            sections = [sections]
        if not isinstance(sections, list) or not sections:
            raise ConfigError(
                "compression", "an algorithm object or a non-empty list of them", sections
            )
        algorithms = []
        accuracy_aware = None
        accuracy_aware_algorithm = None
        seen = set()
        for index, section in enumerate(sections):
            key_path = f"compression[{index}]" if listed else "compression"
            if not isinstance(section, dict):
                raise ConfigError(key_path, "an algorithm object", section)
            name = section.get("algorithm")
            algorithm = _algorithms.get(name) if isinstance(name, str) else None
            if algorithm is None:
                known = _algorithms.names()
                suggestion = closest_match(name, known) if isinstance(name, str) else None
                raise ConfigError(
                    f"{key_path}.algorithm",
                    f"one of {known} (a string)",
                    name,
                    f"Did you mean `{suggestion}`?" if suggestion else None,
                )
            if name in seen:
                raise ConfigError(f"{key_path}.algorithm", "each algorithm at most once", name)
            seen.add(name)
            algorithms.append(algorithm.parse(section, key_path))
            if "accuracy_aware_training" in section:
                accuracy_aware_algorithm = name
                if accuracy_aware is not None:
                    raise ConfigError(
                        f"{key_path}.accuracy_aware_training",
                        "one `accuracy_aware_training` section in the whole config",
                        "a second section",
                    )
                accuracy_aware = _parse_accuracy_aware(
                    section["accuracy_aware_training"],
                    f"{key_path}.accuracy_aware_training",
                    "seed",
                )
        if "accuracy_aware_training" in raw:
            if accuracy_aware is not None:
                raise ConfigError(
                    "accuracy_aware_training",
                    "one `accuracy_aware_training` section in the whole config",
                    "a second section (one is already inside an algorithm section)",
                )
            accuracy_aware = _parse_accuracy_aware(
                raw["accuracy_aware_training"], "accuracy_aware_training", "nncf"
            )
        return cls(algorithms, accuracy_aware, raw, accuracy_aware_algorithm)

    @classmethod
    def from_json(cls, path):
        """Reads and validates a JSON config file.

        As NNCF's early 2.x did, the file may hold comments (`//`, `/* */`)
        and trailing commas: it is read with the `json5` library. It must be
        UTF-8. `NaN` and `Infinity` values are read, then refused by the
        key's validation.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Config file not found. Expected a path to a JSON file. Received: path={path!r}"
            )
        try:
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
        except UnicodeDecodeError as error:
            raise ConfigError(
                "<root>",
                f"a UTF-8 text file; {path} is not (byte {error.start}: {error.reason})",
                "undecodable bytes",
                hint="Save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).",
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as strict:
            # Not strict JSON: comments or trailing commas, or malformed.
            import json5

            try:
                data = json5.loads(text)
            except ValueError as error:
                raise ConfigError(
                    "<root>",
                    f"valid JSON (comments and trailing commas allowed) in {path} "
                    f"(line {strict.lineno}, column {strict.colno}: {strict.msg}; "
                    f"json5: {error})",
                    "malformed JSON",
                ) from None
        return cls.from_dict(data)

    def get(self, key, default=None):
        """Reads a top-level key, such as `batch_size`, kept beside the compression settings."""
        return copy.deepcopy(self._raw.get(key, default))

    def algorithm(self, name):
        """The parsed settings of algorithm `name`, or None if it is not configured."""
        for params in self.algorithms:
            if _algorithm_name(params) == name:
                return params
        return None

    def to_dict(self):
        """A deep copy of the config dict this config was made from.

        Returns:
            The dict as given to `from_dict` (or read by `from_json`), so
            `CompressionConfig.from_dict(config.to_dict())` validates to an equal
            config.
        """
        return copy.deepcopy(self._raw)

    def __repr__(self):
        names = [_algorithm_name(a) for a in self.algorithms]
        return f"CompressionConfig(algorithms={names}, accuracy_aware={self.accuracy_aware_training is not None})"


def _algorithm_name(params):
    return _algorithms.of_params(params).name
