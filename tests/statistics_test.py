"""`ctrl.statistics()`: a short summary by default, the full table on request, and
parameter totals equal to `count_params()` of the model they describe."""

import keras
import pytest

import tf_aat

# A newcomer reads the default summary at a glance; the full table of a
# MobileNetV2 has a line per layer (more than a hundred).
SHORT_LINES = 25


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None)


def _compress(model, section):
    return tf_aat.create_compressed_model(model, {"compression": section})


def test_pruning_totals_equal_count_params_and_the_summary_is_short(mobilenet):
    ctrl, compressed = _compress(
        mobilenet,
        {"algorithm": "filter_pruning", "pruning_init": 0.3, "params": {"filter_importance": "L2"}},
    )
    stats = ctrl.statistics()
    values = stats.to_dict()
    assert values["full_params"] == mobilenet.count_params()
    assert values["current_params"] == ctrl.strip_model(compressed).count_params()
    assert values["current_params"] < values["full_params"]

    short = str(stats)
    full = ctrl.statistics(full=True).to_str()
    assert len(short.splitlines()) <= SHORT_LINES
    assert f"{values['full_params']:,}" in short and f"{values['current_params']:,}" in short
    assert "largest prunable groups" in short and "statistics(full=True)" in short
    # The largest group (by parameters) is the 1280-filter head conv, Conv_1.
    assert "Conv_1" in short and "896/1280" in short
    # The full table names every layer with weights; the summary does not.
    names = [row["name"] for row in values["layers"]]
    assert len(names) > 100
    assert all(name in full for name in names)
    assert len(full.splitlines()) > len(names)
    assert sum(name in short.split() for name in names) < 10
    # The two texts come from one object too.
    assert stats.to_str(full=True) == full


def test_sparsity_totals_equal_count_params_and_the_summary_is_short(mobilenet):
    ctrl, compressed = _compress(
        mobilenet, {"algorithm": "magnitude_sparsity", "sparsity_init": 0.5}
    )
    stats = ctrl.statistics()
    values = stats.to_dict()
    assert values["model_parameters"] == mobilenet.count_params()
    assert values["model_parameters"] == ctrl.strip_model(compressed).count_params()
    assert values["nonzero_parameters"] == pytest.approx(values["parameters"] / 2, abs=1)
    short = str(stats)
    assert len(short.splitlines()) <= SHORT_LINES
    assert f"{mobilenet.count_params():,}" in short
    # The largest sparsified weight is the classifier's 1280x1000 kernel.
    assert "predictions" in short.splitlines()[5]
    full = ctrl.statistics(full=True).to_str()
    assert all(row["layer"] in full for row in values["layers"])
    assert len(full.splitlines()) > len(values["layers"])


def test_quantization_totals_count_the_float_model_and_the_summary_is_short(mobilenet):
    section = {
        "algorithm": "quantization",
        "preset": "mixed",
        "initializer": {
            "range": {"num_init_samples": 0},
            "batchnorm_adaptation": {"num_bn_adaptation_samples": 0},
        },
    }
    ctrl, _ = _compress(mobilenet, section)
    stats = ctrl.statistics()
    values = stats.to_dict()
    # The quantizers' ranges are not parameters of the model described.
    assert values["model_parameters"] == mobilenet.count_params()
    # Every conv, depthwise and dense kernel is quantized (per channel).
    kernels = sum(
        weight.numpy().size
        for layer in mobilenet.layers
        for weight in layer.weights
        if weight.path.endswith(("/kernel", "/depthwise_kernel"))
    )
    assert values["quantized_parameters"] == kernels
    short = str(stats)
    assert len(short.splitlines()) <= SHORT_LINES
    assert f"{kernels:,} of {mobilenet.count_params():,}" in short
    full = ctrl.statistics(full=True).to_str()
    assert all(row["quantizer"] in full for row in values["activations"])


def test_composite_statistics_pass_full_and_count_the_model_once(mobilenet):
    quantization = {
        "algorithm": "quantization",
        "preset": "mixed",
        "initializer": {
            "range": {"num_init_samples": 0},
            "batchnorm_adaptation": {"num_bn_adaptation_samples": 0},
        },
    }
    ctrl, _ = tf_aat.create_compressed_model(
        mobilenet,
        {
            "compression": [
                {
                    "algorithm": "filter_pruning",
                    "pruning_init": 0.3,
                    "params": {"filter_importance": "L2"},
                },
                quantization,
            ]
        },
    )
    values = ctrl.statistics().to_dict()
    # The quantizers pruning sees in the graph add no parameters to the model it describes.
    assert values["filter_pruning"]["full_params"] == mobilenet.count_params()
    assert values["quantization"]["model_parameters"] == mobilenet.count_params()
    short, full = str(ctrl.statistics()), str(ctrl.statistics(full=True))
    assert "Filter pruning statistics" in short and "Quantization statistics" in short
    assert len(short.splitlines()) <= 2 * SHORT_LINES < len(full.splitlines())
