"""Strip changes no quantized value: the stripped QAT model is the searched one."""

import keras
import numpy as np
import pytest

import tf_aat

pytestmark = pytest.mark.onednn

CONFIG = {
    "compression": [
        {
            "algorithm": "filter_pruning",
            "pruning_init": 0.5,
            "params": {"prune_first_conv": True, "filter_importance": "L2"},
        },
        {
            "algorithm": "quantization",
            "initializer": {"batchnorm_adaptation": {"num_bn_adaptation_samples": 0}},
        },
    ]
}


def _model():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="producer")(inputs)
    x = keras.layers.BatchNormalization(name="producer_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="consumer")(x)
    x = keras.layers.BatchNormalization(name="consumer_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs)


def test_pruned_channels_that_dominate_the_consumers_ranges_do_not_move_the_int8_grid():
    keras.utils.set_random_seed(0)
    model = _model()
    rng = np.random.default_rng(0)
    producer = model.get_layer("producer")
    # The four smallest producer filters (L2) are the pruned ones...
    kernel = rng.normal(0, 1, producer.kernel.shape).astype("float32")
    kernel[..., :4] *= 0.01
    producer.kernel.assign(kernel)
    # ...and the consumer's weights that read them are 20x the others: they set
    # every per-channel weight range while they are in the kernel.
    consumer = model.get_layer("consumer")
    weights = rng.normal(0, 0.1, consumer.kernel.shape).astype("float32")
    weights[:, :, :4, :] *= 20.0
    consumer.kernel.assign(weights)
    data = rng.normal(0, 1, (32, 12, 12, 3)).astype("float32")
    ctrl, compressed = tf_aat.create_compressed_model(model, CONFIG, init_data=data)
    pruning = ctrl.children[0]
    keep = keras.ops.convert_to_numpy(compressed.get_layer("producer").mask) > 0.5
    assert not keep[:4].any() and keep[4:].all()
    compressed.compile("adam", "mse")
    compressed.fit(data, rng.normal(0, 1, (32, 4)), epochs=1, batch_size=8, verbose=0)
    stripped = pruning.strip_model(compressed)
    assert stripped.get_layer("consumer").layer.kernel.shape[-2] == 4
    searched = keras.ops.convert_to_numpy(compressed(data, training=False))
    deployed = keras.ops.convert_to_numpy(stripped(data, training=False))
    np.testing.assert_allclose(deployed, searched, rtol=1e-4, atol=1e-5)
