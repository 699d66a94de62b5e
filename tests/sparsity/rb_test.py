"""RB sparsity: learned masks converge toward the level with plain fit; strip binarises."""

import keras
import numpy as np
import pytest

import tf_aat
from tests.sparsity.helpers import compile_model, kernels, load_digits, make_model, zero_fraction


def test_rb_sparsity_converges_toward_its_level_on_digits(tmp_path):
    # Measured (seeds 0, 1, 2; this setup: 10 float epochs, then 6 epochs of
    # batch 16 with Adam 0.01 and the level 0.5 from the start): the level of
    # the binarised masks after epochs 1-6 was
    #   seed 0: 0.0, 0.0, 0.0, 0.525, 0.509, 0.525
    #   seed 1: 0.0, 0.0, 0.0, 0.506, 0.492, 0.492
    #   seed 2: 0.0, 0.0, 0.0, 0.462, 0.490, 0.493
    # (logits start at logit(0.99) = 4.6 and Adam moves them about lr per
    # step, so nothing is cut for ~460 steps; then the loss pulls the level in
    # within one epoch). The spread at epoch 6 is 0.492-0.525: asserted
    # within 0.06 of the level.
    keras.utils.set_random_seed(0)
    (x, y), (x_val, y_val) = load_digits()
    model = make_model()
    compile_model(model)
    model.fit(x, y, epochs=10, batch_size=64, verbose=0)
    config = {
        "compression": {
            "algorithm": "rb_sparsity",
            "sparsity_init": 0.5,
            "params": {
                "schedule": "multistep",
                "multistep_steps": [],
                "multistep_sparsity_levels": [0.5],
            },
        }
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    assert ctrl.compression_rate == 0.5
    compile_model(compressed)
    history = compressed.fit(
        x, y, epochs=6, batch_size=16, verbose=0, callbacks=[tf_aat.CompressionCallback(ctrl)]
    )
    # The regularization loss is part of fit's loss: ((0.99 - 0.5) / 0.05)^2 ~ 96 at first.
    assert history.history["loss"][0] > 50
    assert history.history["loss"][-1] < 20
    level = ctrl.measured_level()
    assert abs(level - 0.5) < 0.06, level
    stats = ctrl.statistics().to_dict()
    assert stats["sparsity_level"] == pytest.approx(level, abs=1e-6)
    stripped = ctrl.strip_model(compressed)
    assert not any(isinstance(layer, tf_aat.CompressionWrapper) for layer in stripped.layers)
    np.testing.assert_allclose(
        stripped.predict(x_val, verbose=0), compressed.predict(x_val, verbose=0), atol=1e-5
    )
    plain = [stripped.get_layer(n).kernel.numpy() for n in ("conv1", "conv2", "classifier")]
    assert zero_fraction(plain) == pytest.approx(level, abs=1e-6)
    compressed.save(tmp_path / "rb.keras")
    loaded = keras.saving.load_model(tmp_path / "rb.keras")
    np.testing.assert_allclose(
        loaded.predict(x_val, verbose=0), compressed.predict(x_val, verbose=0), atol=1e-6
    )


def test_rb_masks_are_sampled_in_training_and_binarised_in_inference():
    keras.utils.set_random_seed(0)
    config = {"compression": {"algorithm": "rb_sparsity", "sparsity_init": 0.3}}
    ctrl, compressed = tf_aat.create_compressed_model(make_model(), config)
    wrapper = compressed.get_layer("conv2")
    mask = wrapper.weight_transforms["kernel"][0]
    assert mask.mask.trainable and not mask.target.trainable
    assert float(mask.target.numpy()) == pytest.approx(0.7)
    logits = np.where(np.arange(int(np.prod(mask.mask.shape))) % 2 == 0, 3.0, -3.0)
    mask.mask.assign(logits.reshape(tuple(mask.mask.shape)).astype("float32"))
    kernel = wrapper.layer.kernel.numpy()
    inference = keras.ops.convert_to_numpy(mask(kernel))
    np.testing.assert_array_equal(inference == 0, logits.reshape(kernel.shape) < 0)
    sampled = keras.ops.convert_to_numpy(mask(kernel, training=True))
    flips = np.mean((sampled == 0) != (inference == 0))
    assert 0.0 < flips < 0.15  # logistic noise: sigmoid(-3) = 4.7% flips each way
    assert zero_fraction(kernels(ctrl).values()) > 0.4
