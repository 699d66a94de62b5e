"""QAT model building: quantizer placement, initialisation, training, saving, SavedModel."""

import keras
import numpy as np
import pytest

import tf_aat
from tests.quantization import models
from tf_aat import _graph
from tf_aat._export import export_tflite
from tf_aat.quantization import ActivationQuantizer, QuantizationController

# QAT runs some convolutions on kernels TensorFlow picks by oneDNN (on or off);
# CI runs these tests both ways.
pytestmark = pytest.mark.onednn

CONFIG = {"compression": {"algorithm": "quantization"}}


def _next_layers(model):
    """For each layer name, the names of the layers reading its output."""
    graph = _graph.flatten(model)
    producers = {t: n.layer.name for n in graph.nodes for t in n.outputs}
    result = {}
    for node in graph.nodes:
        for tensor in node.inputs:
            if tensor in producers:
                result.setdefault(producers[tensor], []).append(node.layer.name)
    return result


def test_quantizers_follow_tflite_fused_ops():
    ctrl, qat = tf_aat.create_compressed_model(models.residual_net(), CONFIG)
    assert isinstance(ctrl, QuantizationController)
    after = _next_layers(qat)
    # conv -> BN -> ReLU is one int8 op: nothing may round inside it.
    assert after["stem"] == ["stem_bn"]
    assert after["stem_bn"] == ["stem_relu"]
    assert after["stem_relu"] == ["stem_relu_quantizer"]
    # conv -> BN feeding an Add: the fused op's output is quantized, then Add + ReLU is one op.
    assert after["b0_bn2"] == ["b0_bn2_quantizer"]
    assert after["b0_add"] == ["b0_relu2"]
    assert after["b0_relu2"] == ["b0_relu2_quantizer"]
    assert after["gap"] == ["gap_quantizer"]
    assert after["logits"] == ["logits_quantizer"]
    first = _graph.flatten(qat).nodes[0].layer
    assert isinstance(first, ActivationQuantizer)  # the model input
    names = {layer.name for layer in _graph.leaf_layers(qat)}
    assert "stem_quantizer" not in names and "stem_bn_quantizer" not in names


def test_same_scale_layers_get_no_quantizer():
    _, qat = tf_aat.create_compressed_model(models.plain_cnn(), CONFIG)
    after = _next_layers(qat)
    assert after["pool1"] == ["conv2"]
    assert after["flatten"] == ["fc1"]
    assert after["conv2"] == ["conv2_quantizer"]  # conv with a fused ReLU


def test_ignored_scopes_leave_layers_float():
    config = {
        "compression": {"algorithm": "quantization", "ignored_scopes": ["{re}fc.*", "logits"]}
    }
    ctrl, qat = tf_aat.create_compressed_model(models.plain_cnn(), config)
    layers = {layer.name: layer for layer in _graph.leaf_layers(qat)}
    assert isinstance(layers["conv1"], tf_aat.CompressionWrapper)
    assert not isinstance(layers["fc1"], tf_aat.CompressionWrapper)
    assert "logits_quantizer" not in layers
    assert {r["layer"] for r in ctrl.statistics().to_dict()["weights"]} == {"conv1", "conv2"}


@pytest.mark.parametrize("kind", ["min_max", "mean_min_max", "percentile", "mean_percentile"])
def test_range_initialisation(kind):
    x = models.images(48)
    config = {
        "compression": {
            "algorithm": "quantization",
            "initializer": {"range": {"num_init_samples": 48, "type": kind}},
        }
    }
    ctrl, _ = tf_aat.create_compressed_model(models.plain_cnn(), config, init_data=x)
    rows = {r["quantizer"]: r for r in ctrl.statistics().to_dict()["activations"]}
    low, high = rows["image_quantizer"]["min"], rows["image_quantizer"]["max"]
    if kind == "min_max":
        assert low == pytest.approx(float(x.min())) and high == pytest.approx(float(x.max()))
    else:
        assert 0.0 <= low < 0.05 and 0.95 < high <= 1.0
    assert rows["relu1_quantizer"]["min"] == pytest.approx(0.0, abs=1e-6)
    assert "Quantization statistics" in str(ctrl.statistics())


def test_init_data_forms_give_the_same_ranges():
    import tensorflow as tf

    x = models.images(64)
    y = models.labels(64)
    config = {
        "compression": {"algorithm": "quantization", "initializer": {"range": {"type": "min_max"}}}
    }
    forms = [
        x,
        tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
        [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)],
    ]
    model = models.plain_cnn()
    ranges = []
    for data in forms:
        ctrl, _ = tf_aat.create_compressed_model(model, config, init_data=data)
        ranges.append(ctrl.statistics().to_dict()["activations"][0])
    assert ranges[0] == ranges[1] == ranges[2]


def test_batch_norm_adaptation_moves_only_batch_norm_statistics():
    model = models.plain_cnn()
    models.randomize_batch_norm(model)
    before = model.get_layer("bn1").moving_mean.numpy().copy()
    config = {
        "compression": {
            "algorithm": "quantization",
            "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 64}},
        }
    }
    ctrl, qat = tf_aat.create_compressed_model(model, config, init_data=models.images(64))
    after = _graph_layer(qat, "bn1").moving_mean.numpy()
    assert not np.allclose(before, after)


def _graph_layer(model, name):
    for layer in _graph.leaf_layers(model):
        if layer.name == name:
            return layer.layer if isinstance(layer, tf_aat.CompressionWrapper) else layer
    raise KeyError(name)


def test_save_load_mid_training_and_continue(tmp_path):
    x, y = models.images(64), models.labels(64)
    ctrl, qat = tf_aat.create_compressed_model(models.residual_net(), CONFIG, init_data=x)
    qat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "qat.keras"
    qat.save(path)
    restored = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_allclose(restored.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    quantizer = restored.get_layer("logits_quantizer")
    assert isinstance(quantizer, ActivationQuantizer)
    before = float(quantizer.range_max.numpy())
    history = restored.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert float(quantizer.range_max.numpy()) != before  # ranges keep training after loading
    # Barely trained logits are near ties, so only closeness (not argmax) is asserted here.
    report = export_tflite(
        restored, tmp_path / "restored.tflite", verify_data=x, raise_on_mismatch=False
    )
    assert not report.float_ops
    assert report.verification["within_tolerance"] >= 0.99


def test_pruning_and_quantization_compose(tmp_path):
    config = {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": 0.5,
                "params": {"prune_first_conv": True},
            },
            {"algorithm": "quantization"},
        ]
    }
    x = models.images(32)
    ctrl, qat = tf_aat.create_compressed_model(models.residual_net(), config, init_data=x)
    stats = ctrl.statistics().to_dict()
    assert set(stats) == {"filter_pruning", "quantization"}
    stem = _graph.leaf_layers(qat)[1]
    assert stem.name == "stem" and "kernel" in stem.weight_quantizers
    assert float(np.min(stem.mask.numpy())) == 0.0  # masks stay applied under QAT
    ctrl.scheduler.epoch_step()
    ctrl.scheduler.step()
    stripped = ctrl.strip_model(qat)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), qat.predict(x, verbose=0), atol=0.05)
    assert stripped.get_layer("stem").layer.filters == 4


def test_saved_model_export_of_qat_model(tmp_path):
    import tensorflow as tf

    x = models.images(8)
    _, qat = tf_aat.create_compressed_model(models.depthwise_separable_net(), CONFIG, init_data=x)
    qat.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.serve(x).numpy(), qat.predict(x, verbose=0), atol=1e-5)


def test_frozen_layers_keep_their_float_weights_and_export(tmp_path):
    """Transfer learning: a frozen (trainable=False) layer stays frozen and float
    under QAT; its kernel is never overwritten with the fake-quantized one."""
    model = models.plain_cnn()
    model.get_layer("conv1").trainable = False
    frozen = model.get_layer("conv1").kernel.numpy().copy()
    x = np.random.default_rng(0).uniform(0, 1, (16, *model.input_shape[1:])).astype("float32")
    ctrl, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=x)
    qat.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    qat.fit(x, np.arange(16) % 10, epochs=2, verbose=0)
    inner = next(
        layer.layer for layer in _graph.leaf_layers(qat) if getattr(layer, "name", "") == "conv1"
    )
    assert not inner.trainable
    np.testing.assert_array_equal(inner.kernel.numpy(), frozen)
    export = export_tflite(qat, tmp_path / "frozen.tflite", verify_data=x)
    assert export.verification["passed"]


def test_separable_convs_round_between_their_two_tflite_ops(tmp_path):
    """SeparableConv2D is DEPTHWISE_CONV_2D then CONV_2D in TFLite, with an int8
    tensor between them: both kernels are fake-quantized and so is that tensor."""
    x, y = models.images(64), models.labels(64)
    model = models.separable_cnn()
    float_outputs = model.predict(x, verbose=0)
    ctrl, qat = tf_aat.create_compressed_model(model, CONFIG, init_data=x)
    stats = ctrl.statistics().to_dict()
    assert not stats["skipped_layers"]
    weights = {(r["layer"], r["weight"]) for r in stats["weights"]}
    assert {("sep0", "depthwise_kernel"), ("sep0", "pointwise_kernel")} <= weights
    ranges = {r["quantizer"]: r for r in stats["activations"]}
    # Calibrated like every other quantizer; the one of sep1 sees 8 * 2 depthwise channels.
    for name in ("sep0", "sep1", "sep2"):
        assert ranges[f"{name}_depthwise_quantizer"]["max"] > 0.0
    # BN and ReLU fold into the pointwise CONV_2D: no rounding inside that chain.
    after = _next_layers(qat)
    assert after["sep0"] == ["sep0_bn"] and after["sep0_relu"] == ["sep0_relu_quantizer"]
    # The fake-quantized model stays close to the float one (8-bit rounding only).
    qat_outputs = qat.predict(x, verbose=0)
    assert np.max(np.abs(qat_outputs - float_outputs)) < 0.1 * np.max(np.abs(float_outputs))

    qat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0)
    sep1 = qat.get_layer("sep1")
    assert (
        float(sep1.intermediate_quantizer.range_max.numpy())
        != ranges["sep1_depthwise_quantizer"]["max"]
    )  # the range follows training (EMA)
    path = tmp_path / "separable.keras"
    qat.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    report = export_tflite(restored, tmp_path / "separable.tflite", verify_data=x)
    assert [op.op for op in report.ops].count("DEPTHWISE_CONV_2D") == 3
    assert not report.float_ops and report.verification["within_tolerance"] >= 0.99


def _wrapper_convolution(layer_type):
    """A layer the wrapper computes itself under QAT, its input, and the channel
    axes of each of its kernels."""
    layers = keras.layers
    depthwise, pointwise = (-2, -1), (-1,)
    cases = {
        "conv1d": lambda: layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu"),
        "strided_conv1d": lambda: layers.Conv1D(6, 3, strides=2, padding="same"),
        "dilated_conv2d": lambda: layers.Conv2D(6, 3, padding="same", dilation_rate=2),
        "dilated_depthwise": lambda: layers.DepthwiseConv2D(
            3, padding="same", dilation_rate=3, depth_multiplier=2
        ),
        "strided_depthwise1d": lambda: layers.DepthwiseConv1D(3, strides=2, padding="same"),
        "dilated_depthwise1d": lambda: layers.DepthwiseConv1D(
            3, padding="valid", dilation_rate=3, depth_multiplier=2
        ),
        "strided_separable1d": lambda: layers.SeparableConv1D(
            6, 3, strides=3, padding="valid", depth_multiplier=2
        ),
        "dilated_separable1d": lambda: layers.SeparableConv1D(
            6, 3, padding="same", dilation_rate=2
        ),
    }
    layer = cases[layer_type]()
    dims = 2 if layer_type.endswith("2d") or layer_type == "dilated_depthwise" else 1
    shape = (2, 20, 4) if dims == 1 else (2, 12, 12, 4)
    if isinstance(layer, (layers.SeparableConv1D,)):
        axes = {"depthwise_kernel": depthwise, "pointwise_kernel": pointwise}
    elif isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
        axes = {"kernel": depthwise}
    else:
        axes = {"kernel": pointwise}
    return layer, shape, axes


# The default CPU kernels of TensorFlow refuse some of these (unequal strides or a
# dilation in a depthwise conv, a dilated conv's gradient); oneDNN's accept them.
@pytest.mark.parametrize(
    "layer_type",
    [
        "conv1d",
        "strided_conv1d",
        "dilated_conv2d",
        "dilated_depthwise",
        "strided_depthwise1d",
        "dilated_depthwise1d",
        "strided_separable1d",
        "dilated_separable1d",
    ],
)
def test_convolutions_run_by_the_wrapper_match_keras_in_values_and_gradients(layer_type):
    """1D and dilated convs under QAT run as one TensorFlow op each (so TFLite
    keeps them int8); they must still compute what the Keras layer computes,
    and train with the same gradients, with oneDNN on and off."""
    import tensorflow as tf

    from tf_aat.quantization import WeightQuantizer

    layer, shape, axes = _wrapper_convolution(layer_type)
    x = tf.constant(np.random.default_rng(0).normal(size=shape), "float32")
    layer.build(x.shape)
    quantizers = {name: WeightQuantizer(channel_axes=a) for name, a in axes.items()}
    wrapped = tf_aat.CompressionWrapper(layer, weight_quantizers=quantizers)
    wrapped.build(x.shape)
    from tf_aat.quantization import _convolution

    assert _convolution.runs_convolution_itself(wrapped)
    kernels = [getattr(layer, name) for name in quantizers]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = wrapped(x)
        mapping = [(k, q(k)) for k, q in zip(kernels, quantizers.values())]
        # Reference: the Keras layer's own code on the same fake-quantized kernels.
        with keras.StatelessScope(state_mapping=mapping):
            reference = layer(x)
        loss_ours = tf.reduce_sum(tf.square(ours))
        loss_reference = tf.reduce_sum(tf.square(reference))
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    for variable in (x, *kernels, layer.bias):
        mine = tape.gradient(loss_ours, variable)
        expected = tape.gradient(loss_reference, variable)
        scale = float(tf.reduce_max(tf.abs(expected)))
        assert scale > 0.0
        np.testing.assert_allclose(mine.numpy(), expected.numpy(), atol=1e-4 * scale)
