"""Checkpoints of a model and its compression controller.

A checkpoint is the model's weights (masks are weights, so they travel with
them) plus the controller's state; the optimizer's state is kept only where
asked for (the resume state), so going back to a rate's best checkpoint does
not move the optimizer's step count or learning rate back with it. Restoring loads the weights first and
then the controller's state, which sets the controller's rate without
recomputing masks, so weights, masks and `ctrl.compression_rate` agree.
"""

import copy
import json
import logging
import os

import numpy as np

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


def optimizer_state_variables(optimizer):
    """The optimizer's variables a resume restores: the step count and the slots.

    A float learning rate is a variable too, but not state to restore: the
    search owns its scale and re-applies it on resume, so restoring the
    scaled value would scale it twice.
    """
    learning_rate = getattr(optimizer, "_learning_rate", None)
    return [v for v in optimizer.variables if v is not learning_rate]


class CheckpointStore:
    """Saves and restores checkpoints by key, in memory or in a directory.

    Args:
        directory: where to write `<key>.weights.npz`, `<key>.json` (and
            `<key>.optimizer.npz` for resume points); None
            keeps the checkpoints in memory (lost when the process ends).
    """

    def __init__(self, directory=None):
        self.directory = directory
        self._memory = {}
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    def weights_path(self, key):
        return os.path.join(self.directory, f"{key}.weights.npz")

    def _metadata_path(self, key):
        return os.path.join(self.directory, f"{key}.json")

    def _optimizer_path(self, key):
        return os.path.join(self.directory, f"{key}.optimizer.npz")

    def save(self, key, model, ctrl, optimizer=None, **metadata):
        """Saves the model and the controller under `key`.

        With `optimizer` (a built Keras optimizer) its variables are saved too:
        the step count (so learning-rate schedules continue where they were)
        and the slots (momentum, Adam moments).
        """
        entry = {"controller_state": controller_state(ctrl), **metadata}
        if self.directory is None:
            self._memory[key] = ([w.copy() for w in model.get_weights()], entry)
            return None
        # `model.get_weights()`, not `model.save_weights()`: Keras puts the
        # optimizer's variables into the latter and `load_weights` restores them.
        path = self.weights_path(key)
        temporary = os.path.join(self.directory, f"{key}.tmp.weights.npz")
        np.savez(temporary, *model.get_weights())
        os.replace(temporary, path)
        if optimizer is not None and getattr(optimizer, "built", False):
            temporary = os.path.join(self.directory, f"{key}.tmp.optimizer.npz")
            state = optimizer_state_variables(optimizer)
            np.savez(temporary, *[np.asarray(v.numpy()) for v in state])
            os.replace(temporary, self._optimizer_path(key))
        elif os.path.exists(self._optimizer_path(key)):
            os.remove(self._optimizer_path(key))  # never restore a stale optimizer state
        write_json_atomically(self._metadata_path(key), entry)
        return path

    def _restore_optimizer(self, key, model, optimizer):
        path = self._optimizer_path(key)
        if optimizer is None or not os.path.exists(path):
            return
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        with np.load(path) as archive:
            values = [archive[f"arr_{i}"] for i in range(len(archive.files))]
        variables = optimizer_state_variables(optimizer)
        if len(values) != len(variables) or any(
            tuple(v.shape) != value.shape for v, value in zip(variables, values)
        ):
            logger.warning(
                "The optimizer state in %s does not fit this optimizer (%d saved variables, "
                "%d now); it starts afresh (step count and slots at zero).",
                path,
                len(values),
                len(variables),
            )
            return
        for variable, value in zip(variables, values):
            variable.assign(value)

    def restore(self, key, model, ctrl, optimizer=None):
        """Loads `key` into the model and the controller; returns its metadata.

        With `optimizer`, also its variables if they were saved with the key.
        """
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
            if not os.path.exists(self.weights_path(key)):
                raise FileNotFoundError(
                    f"Checkpoint {key!r} in {self.directory} has no weights file "
                    f"{self.weights_path(key)} (checkpoints written by tf_aat 0.1.0 before "
                    "this format used .weights.h5). Start the search again without `resume`, "
                    "or with a new log_dir."
                )
            with np.load(self.weights_path(key)) as archive:
                model.set_weights([archive[f"arr_{i}"] for i in range(len(archive.files))])
            self._restore_optimizer(key, model, optimizer)
            with open(metadata_path, encoding="utf-8") as file:
                entry = json.load(file)
        load_controller_state(ctrl, entry["controller_state"])
        return entry

    def delete(self, key):
        if self.directory is None:
            self._memory.pop(key, None)
            return
        for path in (self.weights_path(key), self._metadata_path(key), self._optimizer_path(key)):
            if os.path.exists(path):
                os.remove(path)
