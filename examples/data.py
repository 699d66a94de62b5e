"""Offline data for the examples: scikit-learn's digits, CIFAR-10 from a file or keras.datasets."""

import os

import numpy as np

DATASETS = ("digits", "cifar10")


def load_digits(test_fraction=0.25, seed=0):
    """The 1,797 8x8 digits bundled with scikit-learn, as (8, 8, 1) floats in [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(len(x) * (1.0 - test_fraction))
    return (x[:split], y[:split]), (x[split:], y[split:])


def _decode_split(archive, prefix, limit=None, seed=0):
    """Decodes `limit` images (all if None); the archive is sorted by class, so a
    limited subset is drawn at random (seeded) to keep the classes balanced."""
    import tensorflow as tf

    jpeg = archive[f"{prefix}_jpeg"]
    offsets = archive[f"{prefix}_offsets"]
    labels = archive[f"{prefix}_labels"].astype("int64")
    order = np.random.default_rng(seed).permutation(len(labels))
    if limit is not None:
        order = order[:limit]
    images = np.empty((len(order), 32, 32, 3), np.uint8)
    for row, i in enumerate(order):
        images[row] = tf.io.decode_jpeg(jpeg[offsets[i] : offsets[i + 1]].tobytes()).numpy()
    return images, labels[order]


def load_cifar10(path=None, train_limit=None, test_limit=None):
    """CIFAR-10 as float32 in [0, 1]: from `path` (the shared JPEG archive) or keras.datasets.

    The archive holds `train_jpeg` (uint8 bytes), `train_offsets` (n+1),
    `train_labels`, the same for `test_`, and `class_names`.
    """
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(
                "CIFAR-10 archive not found. Expected the path of a .npz file with "
                f"train_jpeg/train_offsets/train_labels arrays. Received: --cifar10_path={path!r}. "
                "Pass an existing file, or leave the flag empty to use keras.datasets (online)."
            )
        with np.load(path) as archive:
            train = _decode_split(archive, "train", train_limit)
            test = _decode_split(archive, "test", test_limit)
    else:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        train = (x_train[:train_limit], y_train.reshape(-1)[:train_limit].astype("int64"))
        test = (x_test[:test_limit], y_test.reshape(-1)[:test_limit].astype("int64"))
    return (
        (train[0].astype("float32") / 255.0, train[1]),
        (test[0].astype("float32") / 255.0, test[1]),
    )


def load(name, cifar10_path=None, train_limit=None, test_limit=None):
    """Returns ((x_train, y_train), (x_test, y_test)) for dataset `name`."""
    if name == "digits":
        (x, y), test = load_digits()
        return (x[:train_limit], y[:train_limit]), (test[0][:test_limit], test[1][:test_limit])
    if name == "cifar10":
        return load_cifar10(cifar10_path, train_limit, test_limit)
    raise ValueError(
        f"Unknown dataset. Expected one of {list(DATASETS)}. Received: --dataset={name!r}"
    )
