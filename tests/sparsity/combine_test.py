"""Sparsity with int8 quantization (the TFLite file keeps the zeros) and with filter pruning."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_aat
from tests import models
from tests.sparsity.helpers import compile_model, load_digits, make_model, zero_fraction
from tf_aat._export import make_interpreter


def test_sparse_int8_tflite_keeps_the_zeros(tmp_path):
    keras.utils.set_random_seed(0)
    (x, y), (x_val, _) = load_digits()
    model = make_model()
    compile_model(model)
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    config = {
        "compression": [
            {"algorithm": "magnitude_sparsity", "sparsity_init": 0.5},
            {"algorithm": "quantization"},
        ]
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=x[:256])
    assert [c.name for c in ctrl.children] == ["magnitude_sparsity", "quantization"]
    assert ctrl.compression_rate == 0.5  # the only algorithm with a rate
    compile_model(compressed)
    compressed.fit(x, y, epochs=1, batch_size=64, verbose=0)
    stripped = ctrl.strip_model(compressed)
    # The weight quantizers stay (export makes them int8); the sparsity masks are baked in.
    wrapper = stripped.get_layer("conv2")
    assert isinstance(wrapper, tf_aat.CompressionWrapper) and not wrapper.weight_transforms
    keras_kernels = {
        name: stripped.get_layer(name).layer.kernel.numpy()
        for name in ("conv1", "conv2", "classifier")
    }
    assert zero_fraction(keras_kernels.values()) == pytest.approx(0.5, abs=1e-3)
    path = tmp_path / "sparse_int8.tflite"
    tf_aat.export_tflite(
        stripped,
        str(path),
        representative_data=x[:100],
        verify_data=x_val,
        min_argmax_agreement=0.95,  # as the export tests (measured min 0.98)
    )
    interpreter = tf.lite.Interpreter(model_path=str(path))
    tensors = {}
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] == np.int8 and len(detail["shape"]) in (2, 4):
            try:
                tensors[tuple(detail["shape"])] = interpreter.get_tensor(detail["index"])
            except ValueError:
                continue  # activations have no data
    for name, kernel in keras_kernels.items():
        # TFLite keeps conv kernels as (out, h, w, in) and dense ones as (out, in).
        layout = kernel.transpose(3, 0, 1, 2) if kernel.ndim == 4 else kernel.T
        stored = tensors[tuple(layout.shape)]
        assert np.all(stored[layout == 0] == 0), name
        assert np.mean(stored == 0) >= np.mean(layout == 0) - 1e-9


@pytest.mark.onednn
def test_sparse_weight_encoding_shrinks_the_int8_file_and_computes_the_same(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))  # 56k kernel weights
    x = models.images(n=32, size=16)
    config = {
        "compression": [
            {
                "algorithm": "magnitude_sparsity",
                "sparsity_init": 0.9,
                "params": {"sparsity_level_setting_mode": "local"},
            },
            {"algorithm": "quantization"},
        ]
    }
    _, compressed = tf_aat.create_compressed_model(model, config, init_data=x)
    stripped = tf_aat.strip_model(compressed)
    dense = tf_aat.export_tflite(stripped, tmp_path / "dense.tflite", verify_data=x, batch_size=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sparse = tf_aat.export_tflite(
            stripped, tmp_path / "sparse.tflite", verify_data=x, batch_size=1, sparse_weights=True
        )
    # 90% zeros in every kernel: the sparse format stores far fewer weight bytes.
    assert sparse.size_bytes < 0.7 * dense.size_bytes
    assert any(op.op == "DENSIFY" for op in sparse.ops)
    assert not any(op.op == "DENSIFY" for op in dense.ops)
    assert not sparse.float_ops and sparse.verification["passed"]
    assert sparse.verification["argmax_agreement"] == 1.0
    # Where the default XNNPACK delegate cannot prepare the file, the report and a
    # warning say so, and the verification ran on the builtin kernels.
    messages = [str(w.message) for w in caught if "XNNPACK" in str(w.message)]
    interpreter = make_interpreter(model_path=sparse.path)
    if sparse.delegate_error is None:
        interpreter.allocate_tensors()
        assert not messages
    else:
        assert messages and "BUILTIN_WITHOUT_DEFAULT_DELEGATES" in messages[0]
        with pytest.raises(RuntimeError):
            interpreter.allocate_tensors()


def test_sparsity_with_filter_pruning_strips_exactly():
    keras.utils.set_random_seed(0)
    model = models.sequential_cnn()
    models.randomize_batchnorm(model)
    config = {
        "compression": [
            models.pruning_config(0.5)["compression"],
            {
                "algorithm": "magnitude_sparsity",
                "sparsity_init": 0.6,
                "params": {"sparsity_level_setting_mode": "local"},
                "accuracy_aware_training": {"maximal_accuracy_degradation": 1.0},
            },
        ]
    }
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    assert ctrl.rated.name == "magnitude_sparsity"  # its section holds the search
    pruning = next(c for c in ctrl.children if c.name == "filter_pruning")
    assert pruning.compression_rate == 0.5
    sparsity = ctrl.rated
    # Re-ranks with the pruned channels as zeros (conv2: 75% pruned already).
    ctrl.compression_rate = 0.9
    x = models.images()
    stripped = tf_aat.strip_model(compressed)
    np.testing.assert_allclose(stripped(x), compressed(x), rtol=1e-4, atol=1e-5)
    conv2 = stripped.get_layer("conv2")
    assert conv2.filters == 8  # pruned filters removed
    assert np.mean(conv2.kernel.numpy() == 0) > 0.3
    stats = sparsity.statistics().to_dict()
    for row in stats["layers"]:
        assert row["sparsity_level"] == pytest.approx(0.9, abs=0.01), row
