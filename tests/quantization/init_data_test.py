"""Non-finite values in `init_data` are refused with the offending sample's index."""

import numpy as np
import pytest
import tensorflow as tf

import tf_aat
from tests.quantization import models

_CONFIG = {
    "compression": {
        "algorithm": "quantization",
        "initializer": {"range": {"num_init_samples": 16, "type": "min_max"}},
    }
}


def _poisoned(value, index=4):
    x = models.images(16)
    x[index, 3, 7, 1] = value  # one pixel of the 5th image
    return x


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "form",
    [
        lambda x: x,
        lambda x: tf.data.Dataset.from_tensor_slices((x, models.labels(16))).batch(3),
        lambda x: [x[i : i + 2] for i in range(0, 16, 2)],
    ],
    ids=["array", "dataset", "batches"],
)
def test_non_finite_init_data_is_refused_with_the_sample_index(value, form):
    with pytest.raises(ValueError, match=r"init_data sample 4 \(0-based") as caught:
        tf_aat.create_compressed_model(
            models.plain_cnn(), _CONFIG, init_data=form(_poisoned(value))
        )
    message = str(caught.value)
    assert "Expected finite values in `init_data`" in message
    assert f"= {float(value)!r} at" in message
    assert "at element (3, 7, 1)" in message
    assert "nan_to_num" in message


def test_later_sample_index_counts_over_batches():
    x = _poisoned(np.nan, index=13)
    data = tf.data.Dataset.from_tensor_slices(x).batch(5)
    with pytest.raises(ValueError, match=r"init_data sample 13 \("):
        tf_aat.create_compressed_model(models.plain_cnn(), _CONFIG, init_data=data)


def test_non_finite_value_beyond_the_samples_read_is_not_looked_at():
    x = np.concatenate([models.images(16), _poisoned(np.nan, index=4)])  # NaN in sample 20
    config = {"compression": {**_CONFIG["compression"]}}
    config["compression"]["initializer"] = {
        **_CONFIG["compression"]["initializer"],
        "batchnorm_adaptation": {"num_bn_adaptation_samples": 16},
    }
    _, qat = tf_aat.create_compressed_model(models.plain_cnn(), config, init_data=x)
    assert np.isfinite(np.asarray(qat(x[:16]))).all()


def test_batch_norm_adaptation_from_init_data_names_init_data():
    x = np.concatenate([models.images(16), _poisoned(np.nan, index=4)])  # NaN in sample 20
    with pytest.raises(ValueError, match=r"init_data sample 20 \(") as caught:
        tf_aat.create_compressed_model(models.plain_cnn(), _CONFIG, init_data=x)
    assert "BatchNormalization statistics" in str(caught.value)


def test_batch_norm_adaptation_refuses_non_finite_data():
    model = models.residual_net()
    ctrl, _ = tf_aat.create_compressed_model(model, _CONFIG, init_data=models.images(16))
    with pytest.raises(ValueError, match=r"Received: data sample 4 \(") as caught:
        ctrl.adapt_batch_norm(_poisoned(np.nan), num_samples=16)
    assert "BatchNormalization statistics" in str(caught.value)
