"""The QAT model adds the bias TFLite adds: on the int32 grid of the op's accumulator.

TFLite's int8 convolutions add `round(b / (s_in * s_w))` accumulator steps,
with `b` the bias after the BatchNormalization it folds into the op. A float
bias is up to half such a step away, so wherever an output sits that close to
a rounding boundary the file rounded the other way than the Keras model.
"""

import keras
import numpy as np
import pytest

import tf_aat
from tests.quantization.models import pruned_int8_config
from tf_aat._export import make_interpreter, run_tflite

pytestmark = pytest.mark.onednn

CONFIG = {
    "compression": {
        "algorithm": "quantization",
        "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
    }
}


def _model(rng, use_bias, depthwise=False):
    inputs = keras.Input((6, 6, 4))
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=use_bias, name="conv")
    else:
        conv = keras.layers.Conv2D(8, 3, padding="same", use_bias=use_bias, name="conv")
    x = conv(inputs)
    outputs = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, outputs)
    channels = outputs.shape[-1]
    bn = model.get_layer("bn")
    bn.beta.assign(rng.normal(0, 0.5, channels).astype("float32"))
    bn.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    bn.moving_mean.assign(rng.normal(0, 0.5, channels).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    if use_bias:
        model.get_layer("conv").bias.assign(rng.normal(0, 0.5, channels).astype("float32"))
    return model


@pytest.mark.parametrize(
    "use_bias, depthwise",
    [(True, False), (False, False), (True, True)],
    ids=["bias", "bn-only", "depthwise"],
)
def test_the_tflite_file_rounds_every_output_as_the_keras_qat_model_does(
    tmp_path, use_bias, depthwise
):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = _model(rng, use_bias, depthwise)
    data = rng.normal(0, 1, (64, 6, 6, 4)).astype("float32")
    _, compressed = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    # A fine output grid (a few accumulator steps of the bias per output step)
    # puts many outputs near a rounding boundary, as deep in a large network.
    output_quantizer = compressed.get_layer("bn_quantizer")
    low, high = float(output_quantizer.range_min.numpy()), float(output_quantizer.range_max.numpy())
    output_quantizer.set_range(low / 16, high / 16)
    path = tmp_path / "model.tflite"
    tf_aat.export_tflite(compressed, path, verify_data=data[:4], raise_on_mismatch=False)
    tflite = run_tflite(make_interpreter(model_path=path), [data])[0]
    keras_outputs = np.asarray(compressed(data, training=False))
    steps = np.abs(tflite - keras_outputs) / output_quantizer.quantization_step
    assert steps.max() < 1.01
    # A float bias rounds about a tenth of these outputs the other way.
    assert np.mean(steps > 0.5) < 1e-3


def test_range_initialisation_observes_the_float_model_without_a_bias_correction(monkeypatch):
    # While ranges are initialised the input quantizers still hold their initial
    # range, so a correction computed from it would move the observed outputs
    # (and the calibrated ranges) by up to half of a coarse accumulator step.
    from tf_aat import _wrapper

    def ranges(corrections):
        monkeypatch.setattr(_wrapper, "_BIAS_CORRECTIONS", corrections)
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        model = _model(rng, use_bias=True)
        data = rng.normal(0, 1, (32, 6, 6, 4)).astype("float32")
        _, compressed = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
        quantizer = compressed.get_layer("bn_quantizer")
        return float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy())

    with_correction = ranges(list(_wrapper._BIAS_CORRECTIONS))
    assert with_correction == ranges([])


def test_a_pruned_quantized_dense_over_a_feature_map_strips_to_the_same_outputs():
    # ConvNeXt's pointwise convolutions: Dense layers over the feature map, the
    # expansion pruned, the projection reading the kept channels. The stripped
    # projection sums over fewer inputs; the searched one must sum the same way.
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = keras.Input((4, 4, 192))
    x = keras.layers.Dense(768, name="expand")(inputs)
    x = keras.layers.Activation("gelu", name="gelu")(x)
    x = keras.layers.Dense(192, name="project")(x)
    outputs = keras.layers.Add(name="add")([inputs, x])
    model = keras.Model(inputs, outputs)
    for name in ("expand", "project"):
        layer = model.get_layer(name)
        layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape).astype("float32"))
    data = rng.normal(0, 1, (64, 4, 4, 192)).astype("float32")
    config = pruned_int8_config()
    ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=data)
    assert float(np.mean(compressed.get_layer("expand").mask.numpy())) < 0.8
    # A fine grid after the projection puts many of its outputs near a boundary.
    quantizer = compressed.get_layer("project_quantizer")
    low, high = float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy())
    quantizer.set_range(low / 4, high / 4)
    stripped = ctrl.strip_model(compressed)
    searched = np.asarray(compressed(data, training=False))
    deployed = np.asarray(stripped(data, training=False))
    np.testing.assert_array_equal(deployed, searched)
