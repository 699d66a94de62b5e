"""Algorithms are plug-ins: a new one is a registration, with no edit to the core."""

import dataclasses

import keras
import numpy as np
import pytest

import tf_aat
from tests import models


@dataclasses.dataclass(frozen=True)
class ClipParams:
    limit: float


def _parse(section, key_path):
    limit = section.get("params", {}).get("limit", 1.0)
    if not isinstance(limit, (int, float)) or limit <= 0:
        raise tf_aat.ConfigError(f"{key_path}.params.limit", "a positive number", limit)
    return ClipParams(float(limit))


class ClipPlan(tf_aat.CompressionPlan):
    """Clips every ReLU's output: a layer inserted after it."""

    def __init__(self, model, params):
        self.params = params

    def layers_after(self, layer):
        if isinstance(layer, keras.layers.ReLU):
            return [keras.layers.ReLU(max_value=self.params.limit, name=f"{layer.name}_clip")]
        return []


class ClipController(tf_aat.CompressionController):
    name = "activation_clipping"

    def __init__(self, model, params):
        self.model = model
        self.params = params
        self.scheduler = tf_aat.CompressionScheduler()

    def statistics(self):
        return {"algorithm": self.name, "limit": self.params.limit}


@pytest.fixture
def clipping():
    from tf_aat import _algorithms

    tf_aat.register_algorithm(
        tf_aat.Algorithm(
            name="activation_clipping",
            parse=_parse,
            params_type=ClipParams,
            plan=ClipPlan,
            controller=lambda compressed, params, plan, init_data: ClipController(
                compressed, params
            ),
            order=5,
        )
    )
    yield
    _algorithms._ALGORITHMS.pop("activation_clipping")


def test_a_registered_algorithm_is_configured_created_and_combined(clipping):
    model = models.sequential_cnn()
    config = {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.5,
                "params": {"prune_first_conv": True},
            },
            {"algorithm": "activation_clipping", "params": {"limit": 0.5}},
        ]
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    assert [c.name for c in ctrl.children] == ["filter_pruning", "activation_clipping"]
    assert ctrl.compression_rate == 0.5  # the only algorithm with a rate
    clips = [layer for layer in compressed.layers if layer.name.endswith("_clip")]
    assert len(clips) == 1
    x = models.images()
    features = keras.Model(compressed.inputs, clips[0].output)(x)
    assert float(np.max(keras.ops.convert_to_numpy(features))) <= 0.5 + 1e-6
    stripped = tf_aat.strip_model(compressed)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x)),
        keras.ops.convert_to_numpy(compressed(x)),
        atol=1e-4,
        rtol=1e-4,
    )


def test_an_unknown_algorithm_names_the_registered_ones(clipping):
    with pytest.raises(tf_aat.ConfigError, match="activation_clipping.*filter_pruning"):
        tf_aat.CompressionConfig.from_dict({"compression": {"algorithm": "activation_clip"}})
    with pytest.raises(tf_aat.ConfigError, match="Did you mean `activation_clipping`"):
        tf_aat.CompressionConfig.from_dict({"compression": {"algorithm": "activation_cliping"}})


@pytest.mark.parametrize("value", [{}, [], 3, None])
def test_a_malformed_algorithm_value_is_a_config_error(value):
    with pytest.raises(tf_aat.ConfigError, match="compression.algorithm"):
        tf_aat.CompressionConfig.from_dict({"compression": {"algorithm": value}})


def test_a_search_section_with_two_rated_algorithms_must_name_its_algorithm(clipping):
    from tf_aat import _controller

    class Rated(_controller.RatedCompressionController):
        name = "second_rate"

        def __init__(self):
            self._rate = 0.0
            self.scheduler = tf_aat.CompressionScheduler()

        @property
        def compression_rate(self):
            return self._rate

        @compression_rate.setter
        def compression_rate(self, rate):
            self._rate = rate

    pruning = tf_aat.create_compressed_model(models.sequential_cnn(), models.pruning_config())[0]
    composite = tf_aat.CompositeCompressionController([pruning, Rated()], config=None)
    with pytest.raises(ValueError, match="second_rate"):
        composite.compression_rate  # noqa: B018
    chosen = tf_aat.CompositeCompressionController(
        [pruning, Rated()], config=None, rated_name="second_rate"
    )
    chosen.compression_rate = 0.3
    assert chosen.rated.name == "second_rate" and pruning.compression_rate == 0.5


@keras.saving.register_keras_serializable(package="tf_aat_tests")
class SmallWeightsZeroed(keras.layers.Layer):
    """A weight transform: zeroes the weights below `threshold` in magnitude."""

    def __init__(self, threshold=0.1, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold

    def call(self, value):
        return value * keras.ops.cast(keras.ops.abs(value) >= self.threshold, value.dtype)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@dataclasses.dataclass(frozen=True)
class ZeroingParams:
    threshold: float


class ZeroingPlan(tf_aat.CompressionPlan):
    def __init__(self, model, params):
        self.params = params

    def weight_transforms(self, layer):
        if isinstance(layer, keras.layers.Conv2D):
            return {"kernel": [SmallWeightsZeroed(self.params.threshold)]}
        return {}


@pytest.fixture
def zeroing():
    from tf_aat import _algorithms, _wrapper

    def strip(model):
        return _wrapper.bake_weight_transforms(model, lambda t: isinstance(t, SmallWeightsZeroed))

    tf_aat.register_algorithm(
        tf_aat.Algorithm(
            name="small_weight_zeroing",
            parse=lambda section, key_path: ZeroingParams(section.get("threshold", 0.1)),
            params_type=ZeroingParams,
            plan=ZeroingPlan,
            controller=lambda compressed, params, plan, init_data: ClipController(
                compressed, ClipParams(1.0)
            ),
            strip=strip,
            order=5,
            strip_order=-10,  # zeros baked in before pruning removes filters
        )
    )
    yield
    _algorithms._ALGORITHMS.pop("small_weight_zeroing")


def test_weight_transforms_run_in_training_save_and_bake_in_at_strip(zeroing, tmp_path):
    model = models.sequential_cnn()
    config = {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.5,
                "params": {"prune_first_conv": True},
            },
            {"algorithm": "small_weight_zeroing", "threshold": 0.15},
        ]
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    x = models.images()
    wrapped = compressed.get_layer("conv2")
    kernel = keras.ops.convert_to_numpy(wrapped.compressed_weight("kernel"))
    assert np.all((np.abs(kernel) >= 0.15) | (kernel == 0.0))
    assert np.mean(kernel == 0.0) > 0.5  # most of a 3x3x8 kernel is below 0.15
    path = tmp_path / "compressed.keras"
    compressed.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), compressed(x), rtol=1e-5, atol=1e-6)
    stripped = tf_aat.strip_model(compressed)
    assert not any(isinstance(layer, tf_aat.CompressionWrapper) for layer in stripped.layers)
    np.testing.assert_allclose(stripped(x), compressed(x), rtol=1e-4, atol=1e-5)
    plain = keras.ops.convert_to_numpy(stripped.get_layer("conv2").kernel)
    assert np.all((np.abs(plain) >= 0.15) | (plain == 0.0))
    assert stripped.get_layer("conv2").filters == 8
