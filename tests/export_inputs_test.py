"""`export_tflite` on inputs users pass: endless datasets, unknown dimensions, several inputs, RNNs."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_aat
from tf_aat._export import TFLiteExportError, make_interpreter
from tf_aat.quantization import _data

QAT = {
    "compression": {
        "algorithm": "quantization",
        "preset": "mixed",
        "initializer": {"range": {"num_init_samples": 32}},
    }
}


def _rng_array(shape, seed):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _dense_qat():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    outputs = keras.layers.Dense(4)(keras.layers.Dense(8, activation="relu")(inputs))
    x = _rng_array((64, 6), 0)
    _, qat = tf_aat.create_compressed_model(keras.Model(inputs, outputs), QAT, init_data=x)
    return qat, x


def _two_input_qat():
    keras.utils.set_random_seed(0)
    a = keras.Input((4,), name="a")
    b = keras.Input((6,), name="b")
    joined = keras.layers.Add()([keras.layers.Dense(5)(a), keras.layers.Dense(5)(b)])
    model = keras.Model([a, b], keras.layers.Dense(3)(joined))
    xa, xb = _rng_array((32, 4), 1), _rng_array((32, 6), 2)
    labels = np.zeros(32, "int64")
    init = tf.data.Dataset.from_tensor_slices(((xa, xb), labels)).batch(8)
    _, qat = tf_aat.create_compressed_model(model, QAT, init_data=init)
    return qat, xa, xb, labels


def _run_with_timeout(function, seconds):
    """Runs `function` in a thread; fails the test (instead of hanging) past `seconds`."""
    result = {}

    def target():
        try:
            result["value"] = function()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"export_tflite did not return within {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


# -- endless verification data --------------------------------------------------


def test_endless_verify_dataset_reads_the_default_bound(tmp_path):
    qat, x = _dense_qat()
    endless = tf.data.Dataset.from_tensor_slices(x).batch(16).repeat()
    report = _run_with_timeout(
        lambda: tf_aat.export_tflite(qat, tmp_path / "m.tflite", verify_data=endless), 240
    )
    assert report.verification["num_samples"] == 1000
    assert report.verification["passed"]


def test_endless_verify_dataset_reads_num_verify_samples(tmp_path):
    qat, x = _dense_qat()
    endless = tf.data.Dataset.from_tensor_slices(x).batch(16).repeat()
    report = _run_with_timeout(
        lambda: tf_aat.export_tflite(
            qat, tmp_path / "m.tflite", verify_data=endless, num_verify_samples=40
        ),
        240,
    )
    assert report.verification["num_samples"] == 40


def test_take_model_inputs_reads_no_batch_past_the_bound():
    read = []

    def batches():
        for i in range(10):
            read.append(i)
            yield np.full((4, 2), i, "float32")

    inputs = [keras.Input((2,))]
    taken = list(_data.take_model_inputs(batches(), inputs, 6, batch_size=4))
    assert [len(b[0]) for b in taken] == [4, 2] and read == [0, 1]


# -- unknown spatial dimensions -------------------------------------------------


def _unknown_size_qat():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3), name="image")
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(hidden))
    x = _rng_array((32, 8, 8, 3), 3)
    _, qat = tf_aat.create_compressed_model(keras.Model(inputs, outputs), QAT, init_data=x)
    return qat, x


def test_unknown_dimensions_without_a_source_raise_before_converting(tmp_path):
    qat, _ = _unknown_size_qat()
    with pytest.raises(ValueError, match=r"input_shape=.*'image', \(None, None, 3\)"):
        tf_aat.export_tflite(qat, tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_unknown_dimensions_from_input_shape(tmp_path):
    qat, x = _unknown_size_qat()
    report = tf_aat.export_tflite(qat, tmp_path / "m.tflite", input_shape=(8, 8, 3))
    interpreter = make_interpreter(model_path=report.path)
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [-1, 8, 8, 3]
    with pytest.raises(ValueError, match="to match its shape"):
        tf_aat.export_tflite(qat, tmp_path / "m.tflite", input_shape=(8, 8, 4))


def test_unknown_dimensions_from_verify_data(tmp_path):
    qat, x = _unknown_size_qat()
    report = tf_aat.export_tflite(qat, tmp_path / "m.tflite", verify_data=x)
    assert report.verification["passed"] and report.verification["num_samples"] == 32


def test_unknown_dimensions_from_a_one_shot_generator(tmp_path):
    qat, x = _unknown_size_qat()
    read = []

    def batches():
        for start in range(0, 32, 8):
            read.append(start)
            yield x[start : start + 8]

    tf_aat.export_tflite(qat, tmp_path / "m.tflite", representative_data=batches())
    assert read == [0, 8, 16, 24]  # the batch read for the shape was not lost


# -- several inputs in Keras's forms ----------------------------------------------


def test_two_inputs_in_keras_forms(tmp_path):
    qat, xa, xb, labels = _two_input_qat()
    forms = {
        "tuple": (xa, xb),
        "list": [xa, xb],
        "dict": {"b": xb, "a": xa},
        "x_y": ((xa, xb), labels),
        "dict_y": ({"a": xa, "b": xb}, labels),
        "dataset_x_y": tf.data.Dataset.from_tensor_slices(((xa, xb), labels)).batch(8),
        "dataset_dict": tf.data.Dataset.from_tensor_slices({"a": xa, "b": xb}).batch(8),
    }
    for name, data in forms.items():
        report = tf_aat.export_tflite(
            qat, tmp_path / f"{name}.tflite", representative_data=data, verify_data=data
        )
        v = report.verification
        assert v["num_samples"] == 32 and v["passed"], (name, v)
        assert v["max_abs_error"] <= 2 * v["quantization_step"] + 1e-6, (name, v)


def test_two_inputs_read_in_model_order():
    a, b = keras.Input((4,), name="a"), keras.Input((6,), name="b")
    xa, xb = _rng_array((10, 4), 0), _rng_array((10, 6), 1)
    for data in ((xa, xb), {"b": xb, "a": xa}, ([xa, xb], np.zeros(10))):
        batches = list(_data.model_input_batches(data, [a, b], batch_size=4))
        assert [len(batch[0]) for batch in batches] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate([batch[1] for batch in batches]), xb)
    with pytest.raises(ValueError, match="missing"):
        list(_data.model_input_batches({"a": xa}, [a, b]))


def test_single_input_forms_are_read_as_before():
    x = _rng_array((10, 3), 0)
    inputs = [keras.Input((3,), name="x")]
    for data in (x, (x, np.zeros(10)), {"x": x}, [(x[:5], None), (x[5:], None)]):
        if isinstance(data, dict):
            data = [data]  # a dict batch, as a dataset of dicts yields
        got = np.concatenate([b[0] for b in _data.model_input_batches(data, inputs, 4)])
        np.testing.assert_array_equal(got, x)


# -- recurrent layers ---------------------------------------------------------------


def test_lstm_export_error_suggests_batch_size_1(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 4), name="series")
    outputs = keras.layers.Dense(3)(keras.layers.LSTM(8)(inputs))
    x = _rng_array((16, 5, 4), 4)
    _, qat = tf_aat.create_compressed_model(keras.Model(inputs, outputs), QAT, init_data=x)
    with pytest.raises(TFLiteExportError, match="batch_size=1"):
        tf_aat.export_tflite(qat, tmp_path / "m.tflite", require_int8=False)
    report = tf_aat.export_tflite(
        qat, tmp_path / "m.tflite", verify_data=x, batch_size=1, require_int8=False
    )
    assert report.verification["passed"]
