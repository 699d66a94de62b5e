import keras
import numpy as np
import pytest

import tf_aat
from tests import models
from tf_aat.pruning._importance import geometric_median_scores


def _masks(ctrl):
    return {unit.name: ctrl.current_keep()[id(unit.layer)] for g in ctrl.groups for unit in g.units}


def test_setting_the_rate_recomputes_masks_at_once_from_fpgm_scores():
    model = models.sequential_cnn()
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.0))
    assert all(mask.all() for mask in _masks(ctrl).values())
    ctrl.compression_rate = 0.5
    assert ctrl.compression_rate == 0.5
    masks = _masks(ctrl)
    assert (~masks["conv2"]).sum() == 8  # floor(0.5 * 16)
    kernel = compressed.get_layer("conv2").layer.kernel.numpy()
    lowest = np.argsort(geometric_median_scores(kernel))[:8]
    assert set(np.flatnonzero(~masks["conv2"])) == set(lowest)


def test_pruned_channels_are_exactly_zero_and_stay_zero_while_training():
    model = models.residual_net()
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.5))
    compressed.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = models.images(32)
    y = np.random.default_rng(0).integers(0, 10, 32)
    compressed.fit(x, y, epochs=2, batch_size=8, verbose=0)
    keep = _masks(ctrl)["stem"]
    first_add = next(layer for layer in compressed.layers if isinstance(layer, keras.layers.Add))
    probe = keras.Model(compressed.inputs, first_add.output)
    features = keras.ops.convert_to_numpy(probe(x, training=False))
    assert np.all(features[..., ~keep] == 0.0)
    assert np.abs(features[..., keep]).max() > 0.0


def test_original_model_is_not_modified():
    model = models.sequential_cnn()
    before = [w.copy() for w in model.get_weights()]
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.5))
    compressed.compile("sgd", "mse")
    compressed.fit(models.images(8), np.zeros((8, 10)), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_flops_target_makes_the_rate_a_flops_reduction():
    config = models.pruning_config(0.0, pruning_flops_target=0.5)
    ctrl, _ = tf_aat.create_compressed_model(models.residual_net(), config)
    ctrl.compression_rate = 0.4
    stats = ctrl.statistics().to_dict()
    assert stats["rate_means"] == "flops_reduction"
    assert 0.4 <= stats["flops_reduction"] < 0.55
    assert ctrl.pruning_level < 0.4  # fewer filters than 40% give 40% fewer FLOPs here


def test_all_weights_ranks_filters_across_layers():
    config = models.pruning_config(0.5, all_weights=True)
    ctrl, _ = tf_aat.create_compressed_model(models.concat_net(), config)
    masks = _masks(ctrl)
    total = sum(len(m) for m in masks.values())
    pruned = sum((~m).sum() for m in masks.values())
    assert pruned == total // 2
    assert all(m.any() for m in masks.values())


def test_first_downsample_and_ignored_convs_are_reported_not_pruned():
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "pruning_init": 0.5,
            "ignored_scopes": ["{re}block1_.*"],
        }
    }
    ctrl, _ = tf_aat.create_compressed_model(models.residual_net(), config)
    stats = ctrl.statistics()
    text = str(stats)
    assert "first convolution (set prune_first_conv to prune it)" in text
    assert "downsampling convolution" in text
    assert "matched by ignored_scopes" in text
    pruned = {name for name, mask in _masks(ctrl).items() if not mask.all()}
    assert pruned == {"block0_a"}
    assert "FLOPs:" in text and "parameters:" in text and "block0_a" in text


def test_unfollowable_consumer_blocks_its_group_without_crashing():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, name="c1")(inputs)
    x = keras.layers.Conv2D(8, 3, name="c2")(x)
    x = keras.layers.LayerNormalization(name="ln")(x)
    x = keras.layers.Conv2D(4, 1, name="c3")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    ctrl, compressed = tf_aat.create_compressed_model(model, models.pruning_config(0.5))
    stats = ctrl.statistics().to_dict()
    blocked = {tuple(g["layers"]): g["reasons"] for g in stats["not_prunable_groups"]}
    assert any("consumed by ln (LayerNormalization)" in r for r in blocked[("c2",)])
    assert any("model output" in r for r in blocked[("c3",)])
    assert [name for name, m in _masks(ctrl).items() if not m.all()] == ["c1"]
    x = models.images(2, size=8)
    np.testing.assert_allclose(
        ctrl.strip_model(compressed)(x).numpy(), compressed(x).numpy(), atol=1e-5
    )


def test_subclassed_and_unbuilt_models_get_clear_errors():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 1)

        def call(self, x):
            return self.conv(x)

    model = Tiny()
    model(np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(tf_aat.UnsupportedModelError, match="subclassed models hide"):
        tf_aat.create_compressed_model(model, models.pruning_config())
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 1)])
    with pytest.raises(tf_aat.UnsupportedModelError, match=r"Start it with `keras.Input"):
        tf_aat.create_compressed_model(unbuilt, models.pruning_config())


def test_rate_errors_and_state_round_trip():
    ctrl, _ = tf_aat.create_compressed_model(models.sequential_cnn(), models.pruning_config(0.3))
    with pytest.raises(ValueError, match=r"in \[0, 1\).*Received: rate=1.0"):
        ctrl.compression_rate = 1.0
    state = ctrl.get_state()
    masks = _masks(ctrl)
    ctrl.compression_rate = 0.6
    ctrl.load_state(state)
    assert ctrl.compression_rate == 0.3
    # load_state does not recompute masks: the weights bring them back.
    assert any((_masks(ctrl)[k] != masks[k]).any() for k in masks)


def test_scheduler_epoch_step_drives_the_rate():
    config = models.pruning_config(0.1, schedule="baseline", pruning_target=0.5, num_init_steps=1)
    ctrl, _ = tf_aat.create_compressed_model(models.sequential_cnn(), config)
    rates = []
    for _ in range(3):
        ctrl.scheduler.epoch_step()
        rates.append(ctrl.compression_rate)
    assert rates == [0.0, 0.5, 0.5]
    ctrl.disable_scheduler()
    ctrl.compression_rate = 0.2
    ctrl.scheduler.epoch_step()
    assert ctrl.compression_rate == 0.2
