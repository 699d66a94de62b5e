"""Checkpoints of a model and its compression controller.

A checkpoint is the model's weights (masks are weights, so they travel with
them) plus the controller's state. Restoring loads the weights first and
then the controller's state, which sets the controller's rate without
recomputing masks, so weights, masks and `ctrl.compression_rate` agree.
"""

import copy
import json
import logging
import os

logger = logging.getLogger("tf_aat.accuracy_aware")


def controller_state(ctrl):
    """Returns the controller's JSON-serialisable state."""
    get_state = getattr(ctrl, "get_state", None)
    if callable(get_state):
        return json.loads(json.dumps(get_state()))
    return {"compression_rate": float(ctrl.compression_rate)}


def load_controller_state(ctrl, state):
    """Restores the controller's state (its rate) without recomputing masks."""
    load_state = getattr(ctrl, "load_state", None)
    if callable(load_state):
        load_state(copy.deepcopy(state))
    else:
        # Without `load_state` setting the rate recomputes masks from the
        # restored weights, which gives the same masks for magnitude-like
        # criteria.
        ctrl.compression_rate = state["compression_rate"]


def write_json_atomically(path, data):
    """Writes `data` as JSON so that readers see the old or the new file."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class CheckpointStore:
    """Saves and restores checkpoints by key, in memory or in a directory.

    Args:
        directory: where to write `<key>.weights.h5` and `<key>.json`; None
            keeps the checkpoints in memory (lost when the process ends).
    """

    def __init__(self, directory=None):
        self.directory = directory
        self._memory = {}
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    def weights_path(self, key):
        return os.path.join(self.directory, f"{key}.weights.h5")

    def _metadata_path(self, key):
        return os.path.join(self.directory, f"{key}.json")

    def save(self, key, model, ctrl, **metadata):
        """Saves the model and the controller under `key`."""
        entry = {"controller_state": controller_state(ctrl), **metadata}
        if self.directory is None:
            self._memory[key] = ([w.copy() for w in model.get_weights()], entry)
            return None
        path = self.weights_path(key)
        temporary = os.path.join(self.directory, f"{key}.tmp.weights.h5")
        model.save_weights(temporary, overwrite=True)
        os.replace(temporary, path)
        write_json_atomically(self._metadata_path(key), entry)
        return path

    def restore(self, key, model, ctrl):
        """Loads `key` into the model and the controller; returns its metadata."""
        if self.directory is None:
            if key not in self._memory:
                raise KeyError(f"No checkpoint was saved under the key {key!r}.")
            weights, entry = self._memory[key]
            model.set_weights(weights)
        else:
            metadata_path = self._metadata_path(key)
            if not os.path.exists(metadata_path):
                raise FileNotFoundError(
                    f"No checkpoint {key!r} in {self.directory}; expected {metadata_path}."
                )
            model.load_weights(self.weights_path(key))
            with open(metadata_path, encoding="utf-8") as file:
                entry = json.load(file)
        load_controller_state(ctrl, entry["controller_state"])
        return entry

    def delete(self, key):
        if self.directory is None:
            self._memory.pop(key, None)
            return
        for path in (self.weights_path(key), self._metadata_path(key)):
            if os.path.exists(path):
                os.remove(path)
