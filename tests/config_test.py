import json
import logging

import pytest

import tf_aat
from tf_aat import _fields

NAN = float("nan")


def test_seed_layout_with_filter_importance_aliases_and_extra_keys(tmp_path):
    config = {
        "model": "resnet20",
        "batch_size": 128,
        "epochs": 10,
        "optimizer": {"type": "sgd"},
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.05,
                "params": {
                    "schedule": "exponential",
                    "pruning_target": 0.1,
                    "pruning_steps": 50,
                    "weight_importance": "geometric_median",
                },
            }
        ],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    parsed = tf_aat.CompressionConfig.from_json(path)
    pruning = parsed.algorithm("filter_pruning")
    assert pruning.pruning_init == 0.05
    assert pruning.pruning_target == 0.1
    assert pruning.importance == "geometric_median"
    assert parsed.get("batch_size") == 128
    other = tf_aat.CompressionConfig.from_dict(
        {"compression": {"algorithm": "filter_pruning", "params": {"filter_importance": "L2"}}}
    )
    assert other.algorithm("filter_pruning").importance == "L2"


@pytest.mark.parametrize(
    "config,match",
    [
        (
            {"compression": {"algorithm": "filter_pruning", "params": {"pruning_taget": 0.3}}},
            r"compression\.params\.pruning_taget.*Did you mean `pruning_target`",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "prunning_init": 0.1}},
            r"compression\.prunning_init.*Did you mean `pruning_init`",
        ),
        (
            {"compression": {"algorithm": "filter_prunning"}},
            r"compression\.algorithm.*Did you mean `filter_pruning`",
        ),
        (
            {"compresion": {"algorithm": "filter_pruning"}},
            r"Did you mean `compression` instead of `compresion`",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "params": {"schedule": "linear"}}},
            r"compression\.params\.schedule.*one of \['exponential', "
            r"'exponential_with_bias', 'baseline'\].*Received: .*'linear'",
        ),
        (
            {"compression": [{"algorithm": "filter_pruning", "params": {"pruning_target": 1.5}}]},
            r"compression\[0\]\.params\.pruning_target.*\[0\.0, 1\.0\].*Received",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "params": {"pruning_steps": "ten"}}},
            r"`compression\.params\.pruning_steps`: expected an integer",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "params": {"prune_first_conv": 1}}},
            r"prune_first_conv`: expected true or false",
        ),
        (
            {
                "compression": {
                    "algorithm": "filter_pruning",
                    "params": {"schedule": "exponential", "pruning_steps": 0},
                }
            },
            r"pruning_steps`: expected an integer >= 1 \(0 only with the baseline schedule",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "params": {"pruning_target": NAN}}},
            r"compression\.params\.pruning_target`: expected a finite number.*nan",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "pruning_init": NAN}},
            r"compression\.pruning_init`: expected a finite number",
        ),
        (
            {
                "compression": {"algorithm": "quantization"},
                "accuracy_aware_training": {
                    "mode": "early_exit",
                    "params": {"maximal_relative_accuracy_degradation": 150},
                },
            },
            r"maximal_relative_accuracy_degradation`: expected a number in \[0, 100\]",
        ),
        (
            {
                "compression": {
                    "algorithm": "filter_pruning",
                    "accuracy_aware_training": {"maximal_accuracy_degradation": 100.5},
                }
            },
            r"maximal_accuracy_degradation`: expected a number in \[0, 100\]",
        ),
        (
            {
                "compression": {"algorithm": "filter_pruning"},
                "accuracy_aware_training": {
                    "mode": "early_exit",
                    "params": {"maximal_absolute_accuracy_degradation": NAN},
                },
            },
            r"maximal_absolute_accuracy_degradation`: expected a finite number",
        ),
        (
            {
                "compression": {
                    "algorithm": "quantization",
                    "initializer": {"range": {"params": {"max_percentile": NAN}}},
                }
            },
            r"max_percentile`: expected a finite number",
        ),
        (
            {
                "compression": {
                    "algorithm": "filter_pruning",
                    "params": {"weight_importance": "taylor"},
                }
            },
            r"weight_importance`: expected one of \['geometric_median', 'L1', 'L2'\]",
        ),
        ({"compression": []}, r"`compression`: expected an algorithm object or a non-empty list"),
        (
            {"compression": [{"algorithm": "filter_pruning"}, {"algorithm": "filter_pruning"}]},
            r"each algorithm at most once",
        ),
        (
            {"compression": {"algorithm": "filter_pruning", "ignored_scopes": 3}},
            r"ignored_scopes`: expected a layer-name pattern or a list",
        ),
    ],
)
def test_config_errors_name_path_expectation_and_fix(config, match):
    with pytest.raises(tf_aat.ConfigError, match=match):
        tf_aat.CompressionConfig.from_dict(config)


def test_malformed_json_and_missing_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"compression": {"algorithm": "filter_pruning"}')
    with pytest.raises(tf_aat.ConfigError, match=r"valid JSON .*bad\.json \(line 1, column 48"):
        tf_aat.CompressionConfig.from_json(path)
    with pytest.raises(FileNotFoundError, match="Config file not found"):
        tf_aat.CompressionConfig.from_json(tmp_path / "missing.json")


def test_bad_config_fails_before_the_model_is_touched():
    import keras

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])
    with pytest.raises(tf_aat.ConfigError):
        tf_aat.create_compressed_model(
            model, {"compression": {"algorithm": "filter_pruning", "params": {"x": 1}}}
        )


def test_json_with_comments_and_trailing_commas_loads(tmp_path):
    path = tmp_path / "nncf.json"
    path.write_text(
        """// an NNCF sample config
{
    "model": "resnet50", /* kept beside the compression settings */
    "compression": {
        "algorithm": "filter_pruning",
        "params": {"pruning_target": 0.4, "filter_importance": "L2",},
    },
}
"""
    )
    config = tf_aat.CompressionConfig.from_json(path)
    assert config.algorithm("filter_pruning").pruning_target == 0.4
    assert config.get("model") == "resnet50"


def test_a_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.json"
    text = '{"model": "r\xe9seau", "compression": {"algorithm": "quantization"}}'
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(tf_aat.ConfigError, match=r"UTF-8 text file; .*latin1\.json is not.*iconv"):
        tf_aat.CompressionConfig.from_json(path)


def test_nan_in_a_json_file_is_refused_at_parse_time(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(
        '{"compression": {"algorithm": "filter_pruning", "params": {"pruning_target": NaN}}}'
    )
    with pytest.raises(tf_aat.ConfigError, match=r"pruning_target`: expected a finite number"):
        tf_aat.CompressionConfig.from_json(path)


def test_nncf_pruning_keys_accepted_with_their_meaning(caplog):
    baseline = tf_aat.CompressionConfig.from_dict(
        {
            "compression": {
                "algorithm": "filter_pruning",
                "params": {"schedule": "baseline", "pruning_steps": 0, "pruning_target": 0.3},
            }
        }
    )
    assert baseline.algorithm("filter_pruning").pruning_steps == 0
    with caplog.at_level(logging.WARNING, "tf_aat.pruning"):
        above = tf_aat.CompressionConfig.from_dict(
            {
                "compression": {
                    "algorithm": "filter_pruning",
                    "pruning_init": 0.6,
                    "params": {"pruning_target": 0.3, "filter_importance": "L2"},
                }
            }
        )
    assert above.algorithm("filter_pruning").pruning_init == 0.6
    assert "pruning_init (0.6) is above the pruning target (0.3)" in caplog.text


def test_geometric_median_default_is_said_once(caplog, monkeypatch):
    monkeypatch.setattr(_fields, "_told", set())
    section = {"compression": {"algorithm": "filter_pruning"}}
    with caplog.at_level(logging.WARNING, "tf_aat.pruning"):
        tf_aat.CompressionConfig.from_dict(section)
        tf_aat.CompressionConfig.from_dict(section)
        tf_aat.CompressionConfig.from_dict(
            {"compression": {"algorithm": "filter_pruning", "params": {"filter_importance": "L1"}}}
        )
    assert caplog.text.count("geometric median") == 1
    assert "NNCF's default is L2" in caplog.text
