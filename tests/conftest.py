import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_cifar10_archive(path, train=256, test=64, seed=0):
    """A small archive in the shared CIFAR-10 file's format (JPEG bytes, offsets,
    labels, class names), with learnable images: the class sets the mean colour."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    arrays = {"class_names": np.array([f"class{i}" for i in range(10)])}
    for split, count in (("train", train), ("test", test)):
        labels = np.sort(rng.integers(0, 10, count))  # the real archive is sorted by class
        blobs = []
        for label in labels:
            colour = np.array([label * 25, 255 - label * 25, (label * 70) % 256])
            image = np.clip(colour + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            blobs.append(tf.io.encode_jpeg(image).numpy())
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
        arrays[f"{split}_labels"] = labels.astype(np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def cifar10_archive(tmp_path_factory):
    """Path of a tiny offline CIFAR-10-format archive (256 train, 64 test images)."""
    return str(write_cifar10_archive(tmp_path_factory.mktemp("data") / "cifar10_tiny.npz"))
