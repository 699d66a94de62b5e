"""What `import tf_aat` says when TensorFlow is missing or too old, or Keras runs another backend."""

import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from tests.scripts import ROOT
from tf_aat import _requirements


def _import_tf_aat(code_before="", **env):
    import os

    return subprocess.run(
        [sys.executable, "-c", f"{code_before}\nimport tf_aat"],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_tensorflow_the_import_error_names_both_packages():
    # As if neither `tensorflow` nor `tensorflow-cpu` were installed.
    result = _import_tf_aat("import sys; sys.modules['tensorflow'] = None")
    assert result.returncode != 0
    assert "ImportError: tf_aat needs TensorFlow" in result.stderr
    assert "pip install tensorflow-cpu" in result.stderr


def test_another_keras_backend_is_named_before_keras_imports_it():
    result = _import_tf_aat(KERAS_BACKEND="jax")
    assert result.returncode != 0
    assert "tf_aat needs Keras's TensorFlow backend" in result.stderr
    assert "'jax'" in result.stderr and "KERAS_BACKEND=tensorflow" in result.stderr


def test_a_keras_already_on_another_backend_is_refused(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ImportError, match="Received: Keras backend 'torch'"):
        _requirements.check()


@pytest.mark.parametrize(
    ("module", "old", "named"),
    [(tf, "2.15.1", "TensorFlow >= 2.16"), (keras, "3.11.0", "Keras >= 3.12")],
)
def test_versions_older_than_the_tested_floor_are_refused(monkeypatch, module, old, named):
    monkeypatch.setattr(module, "__version__", old)
    with pytest.raises(ImportError, match=f"{named} \\(received {old}"):
        _requirements.check()


def test_the_floor_matches_pyproject_and_the_oldest_ci_constraints():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = deps["optional-dependencies"]
    assert "keras>=3.12" in deps["dependencies"]
    assert not any(dep.startswith("tensorflow") for dep in deps["dependencies"])
    assert extras["tensorflow"] == ["tensorflow>=2.16"]
    assert extras["tensorflow-cpu"] == ["tensorflow-cpu>=2.16"]
    pins = dict(
        line.split("==")
        for line in (ROOT / ".ci/constraints-oldest.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert _requirements.version_tuple(pins["tensorflow"]) == _requirements.MIN_TENSORFLOW
    assert _requirements.version_tuple(pins["keras"]) == _requirements.MIN_KERAS


def test_version_strings_of_releases_and_nightlies_are_read():
    assert _requirements.version_tuple("2.16.2") == (2, 16)
    assert _requirements.version_tuple("2.22.0-dev20261130") == (2, 22)
    assert _requirements.version_tuple("3.10.0rc1") == (3, 10)
