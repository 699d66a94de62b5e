"""What tf_aat needs at run time, checked once when it is imported.

TensorFlow is not a hard dependency of the distribution, so that an installed
`tensorflow-cpu` (or a vendor build) is used as it is instead of pip adding the
full `tensorflow` wheel beside it; these checks turn a missing or unsupported
TensorFlow, Keras or backend into one clear message instead of an error deep in
a training step.
"""

import importlib.util
import os
import re
import sys

# The oldest versions CI runs the test suite with (.ci/constraints-oldest.txt);
# keep them equal to the lower bounds in pyproject.toml.
MIN_TENSORFLOW = (2, 16)
MIN_KERAS = (3, 12)

_INSTALL = (
    "Install one of them, for example `pip install tensorflow` (GPU builds included), "
    "`pip install tensorflow-cpu`, or `pip install tf_aat[tensorflow]`."
)


def version_tuple(text):
    """The leading (major, minor) numbers of a version string such as '2.16.2' or '2.22.0-dev'."""
    match = re.match(r"(\d+)\.(\d+)", str(text))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _dotted(version):
    return ".".join(str(part) for part in version)


def check():
    """Raises ImportError saying what is missing or too old and how to fix it."""
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            "tf_aat needs TensorFlow (the `tensorflow` or `tensorflow-cpu` package), and "
            f"neither is installed in this environment. {_INSTALL}"
        )
    requested = os.environ.get("KERAS_BACKEND")
    if requested and requested != "tensorflow" and "keras" not in sys.modules:
        # Keras would import that backend's framework first and may fail on it.
        _wrong_backend(requested)
    import keras
    import tensorflow as tf

    problems = []
    if version_tuple(tf.__version__) < MIN_TENSORFLOW:
        problems.append(
            f"TensorFlow >= {_dotted(MIN_TENSORFLOW)} (received {tf.__version__}; "
            "upgrade with `pip install -U tensorflow`)"
        )
    if version_tuple(keras.__version__) < MIN_KERAS:
        problems.append(
            f"Keras >= {_dotted(MIN_KERAS)} (received {keras.__version__}; "
            "upgrade with `pip install -U keras`)"
        )
    if problems:
        raise ImportError("tf_aat needs " + " and ".join(problems) + ".")
    backend = keras.backend.backend()
    if backend != "tensorflow":
        _wrong_backend(backend)


def _wrong_backend(backend):
    raise ImportError(
        "tf_aat needs Keras's TensorFlow backend (its layers call TensorFlow ops and it "
        f"exports with the TFLite converter). Received: Keras backend {backend!r}"
        f" (KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '<unset>')!r}). Set "
        'KERAS_BACKEND=tensorflow in the environment, or "backend": "tensorflow" '
        "in ~/.keras/keras.json, before Keras is imported."
    )


check()
