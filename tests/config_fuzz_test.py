"""Property: `CompressionConfig.from_dict` on mutated valid configs returns or raises `ConfigError`.

Configs are made by mutating valid ones (the example configs and a few
written here): keys dropped or added, values replaced by wrong types, NaN,
infinities, huge numbers or nested junk, unknown algorithm names, lists
where objects go and objects where lists go. Nothing but `tf_aat.ConfigError`
may escape the parser.
"""

import copy
import json
import math
import pathlib

import json5
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tf_aat

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "examples" / "configs"

WRITTEN = [
    {"compression": {"algorithm": "filter_pruning"}},
    {"compression": {"algorithm": "quantization"}},
    {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.1,
                "params": {
                    "schedule": "exponential_with_bias",
                    "pruning_target": 0.4,
                    "pruning_flops_target": 0.3,
                    "pruning_steps": 3,
                    "num_init_steps": 1,
                    "filter_importance": "L2",
                    "prune_first_conv": True,
                    "prune_downsample_convs": True,
                    "all_weights": True,
                    "maximal_pruning_level": 0.8,
                },
                "ignored_scopes": ["{re}conv.*", "dense"],
            },
            {
                "algorithm": "quantization",
                "preset": "mixed",
                "weights": {"mode": "symmetric", "per_channel": True, "bits": 8},
                "activations": {"mode": "asymmetric", "bits": 8},
                "initializer": {
                    "range": {
                        "type": "percentile",
                        "num_init_samples": 64,
                        "params": {"min_percentile": 0.5, "max_percentile": 99.5},
                    },
                    "batchnorm_adaptation": {"num_bn_adaptation_samples": 32},
                },
                "quantize_inputs": False,
            },
        ],
        "accuracy_aware_training": {
            "mode": "adaptive_compression_level",
            "params": {
                "maximal_relative_accuracy_degradation": 1.0,
                "initial_training_phase_epochs": 2,
                "patience_epochs": 2,
                "maximal_total_epochs": 10,
            },
        },
    },
    {
        "compression": {"algorithm": "quantization"},
        "accuracy_aware_training": {
            "mode": "early_exit",
            "params": {"maximal_absolute_accuracy_degradation": 0.01, "maximal_total_epochs": 5},
        },
    },
    {
        "compression": {
            "algorithm": "filter_pruning",
            "accuracy_aware_training": {
                "maximal_accuracy_degradation": 1.0,
                "initial_training_phase_epochs": 1,
                "patience_epochs": 1,
                "minimal_compression_rate_step": 0.025,
                "compression_rate_step": 0.1,
                "step_reduction_factor": 0.5,
            },
        }
    },
]


def _load(path):
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json5.loads(text)


VALID = WRITTEN + [_load(p) for p in sorted(CONFIGS.glob("*.json"))]


def _keys_and_strings(value, keys, strings):
    if isinstance(value, dict):
        for k, v in value.items():
            keys.add(k)
            _keys_and_strings(v, keys, strings)
    elif isinstance(value, list):
        for v in value:
            _keys_and_strings(v, keys, strings)
    elif isinstance(value, str):
        strings.add(value)


KEYS, STRINGS = set(), set()
for _config in VALID:
    _keys_and_strings(_config, KEYS, STRINGS)
KEYS, STRINGS = sorted(KEYS), sorted(STRINGS)
ALGORITHMS = ["filter_pruning", "quantization", "magnitude_sparsity", "rb_sparsity"]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 1e308, 0.5, 101, -0.0])
    | st.text(max_size=6)
    | st.sampled_from(STRINGS + ALGORITHMS + ["", "filter_prunning", "sparsity", "L3"])
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.sampled_from(KEYS) | st.text(max_size=5) | st.integers(), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _get(value, path):
    for step in path:
        value = value[step]
    return value


def _set(root, path, new):
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


OPERATIONS = ["drop", "add", "replace", "wrap", "unwrap", "to_dict", "to_list", "algorithm"]


def _mutate(data, config):
    path = data.draw(st.sampled_from(list(_paths(config))))
    node = _get(config, path)
    operation = data.draw(st.sampled_from(OPERATIONS))
    if operation == "drop" and path:
        parent = _get(config, path[:-1])
        del parent[path[-1]]
    elif operation == "add" and isinstance(node, dict):
        node[data.draw(st.sampled_from(KEYS) | st.text(max_size=5))] = data.draw(JUNK)
    elif operation == "add" and isinstance(node, list):
        node.append(copy.deepcopy(data.draw(JUNK | st.sampled_from(VALID))))
    elif operation == "wrap":
        config = _set(config, path, [node])
    elif operation == "unwrap" and isinstance(node, list) and node:
        config = _set(config, path, node[0])
    elif operation == "to_dict" and isinstance(node, list):
        config = _set(config, path, {str(i): v for i, v in enumerate(node)})
    elif operation == "to_list" and isinstance(node, dict):
        config = _set(config, path, list(node.values()) or [node])
    elif operation == "algorithm" and isinstance(node, dict):
        node["algorithm"] = data.draw(JUNK | st.sampled_from(ALGORITHMS))
    else:
        config = _set(config, path, data.draw(JUNK))
    return config


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_mutated_configs_raise_only_config_error(data):
    config = copy.deepcopy(data.draw(st.sampled_from(VALID)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        config = _mutate(data, config)
    try:
        parsed = tf_aat.CompressionConfig.from_dict(config)
    except tf_aat.ConfigError as error:
        assert str(error)
    else:
        assert parsed.algorithms
        repr(parsed)


BAD_VALUES = [None, True, math.nan, math.inf, -math.inf, -1, 10**30, "junk", [], [1], {}, {"x": 1}]


def _parse_or_config_error(config):
    try:
        tf_aat.CompressionConfig.from_dict(config)
    except tf_aat.ConfigError:
        pass


def test_every_value_of_every_valid_config_replaced_by_junk():
    """A sweep beside the random search: each path of each valid config, each bad value."""
    count = 0
    for valid in VALID:
        for path in _paths(valid):
            for bad in BAD_VALUES:
                _parse_or_config_error(_set(copy.deepcopy(valid), path, copy.deepcopy(bad)))
                count += 1
            if path:
                config = copy.deepcopy(valid)
                del _get(config, path[:-1])[path[-1]]
                _parse_or_config_error(config)
    assert count > 1000
