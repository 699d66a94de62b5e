"""Checkpoints of a model and its compression controller.

A checkpoint is the model's weights (masks are weights, so they travel with
them) plus the controller's state; the optimizer's state is kept only where
asked for (the resume state), so going back to a rate's best checkpoint does
not move the optimizer's step count or learning rate back with it. Restoring loads the weights first and
then the controller's state, which sets the controller's rate without
recomputing masks, so weights, masks and `ctrl.compression_rate` agree.
"""

import contextlib
import copy
import hashlib
import json
import logging
import os
import zipfile

import numpy as np

logger = logging.getLogger("tf_aat.accuracy_aware")


class CheckpointError(RuntimeError):
    """A checkpoint or resume-state file that cannot be read (truncated, corrupt)."""


def _fsync_directory(directory):
    """Makes a rename in `directory` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic_file(path, mode="wb", **kwargs):
    """Writes `path` through a temporary file that is fsynced, then renamed.

    Readers see the old file or the complete new one. If anything fails
    (a full disk, an interrupted write), the temporary file is removed and
    the old file, if any, stays.
    """
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.tmp")
    try:
        with open(temporary, mode, **kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def non_finite_variables(variables):
    """Names (paths) of the variables holding a NaN or an infinity."""
    bad = []
    for variable in variables:
        value = variable.numpy() if hasattr(variable, "numpy") else np.asarray(variable)
        value = np.asarray(value)
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad.append(getattr(variable, "path", None) or getattr(variable, "name", "?"))
    return bad


def reset_optimizer_slots(optimizer):
    """Gives a built optimizer's slots their initial values; keeps its step count.

    The initial values come from a fresh optimizer of the same class and
    config built on the same variables (so, e.g., Adagrad's accumulators get
    `initial_accumulator_value`); where that cannot be built, zeros.
    """
    keep = {id(optimizer.iterations), id(getattr(optimizer, "_learning_rate", None))}
    slots = [v for v in optimizer.variables if id(v) not in keep]
    fresh_values = None
    try:
        fresh = optimizer.__class__.from_config(optimizer.get_config())
        fresh.build(list(optimizer._trainable_variables))
        fresh_keep = {id(fresh.iterations), id(getattr(fresh, "_learning_rate", None))}
        fresh_slots = [v for v in fresh.variables if id(v) not in fresh_keep]
        if len(fresh_slots) == len(slots) and all(
            tuple(a.shape) == tuple(b.shape) for a, b in zip(slots, fresh_slots)
        ):
            fresh_values = [np.asarray(v.numpy()) for v in fresh_slots]
    except Exception:  # any optimizer that cannot be cloned gets zeros
        fresh_values = None
    for index, variable in enumerate(slots):
        if fresh_values is not None:
            variable.assign(fresh_values[index])
        else:
            variable.assign(np.zeros(tuple(variable.shape), variable.dtype))


def _corrupt(path, error, what):
    return CheckpointError(
        f"The accuracy-aware {what} {path} is truncated or corrupt "
        f"({type(error).__name__}: {error}). Delete the log_dir's checkpoints (or use a "
        "new log_dir) and start the search again with resume=False."
    )


def _load_npz(path, what):
    try:
        with np.load(path) as archive:
            return [archive[f"arr_{i}"] for i in range(len(archive.files))]
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise _corrupt(path, error, what) from None


def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _corrupt(path, error, what) from None


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
    text = json.dumps(data, indent=1, sort_keys=True)
    with _atomic_file(path, "w", encoding="utf-8") as file:
        file.write(text)


def optimizer_state_variables(optimizer):
    """The optimizer's variables a resume restores: the step count and the slots.

    A float learning rate is a variable too, but not state to restore: the
    search owns its scale and re-applies it on resume, so restoring the
    scaled value would scale it twice.
    """
    learning_rate = getattr(optimizer, "_learning_rate", None)
    return [v for v in optimizer.variables if v is not learning_rate]


def grid_decimals(params):
    """Decimals that write every rate the search steps to exactly: those of its finest
    step (`compression_rate_step` times `step_reduction_factor` as long as the step is
    not below `minimal_compression_rate_step`), at least 1 and at most 6."""
    step = float(params.compression_rate_step)
    factor = float(params.step_reduction_factor)
    minimal = float(params.minimal_compression_rate_step)
    decimals = 1
    while step >= minimal * (1 - 1e-9) and decimals < 6:
        decimals = max(
            decimals, next((d for d in range(1, 7) if abs(round(step, d) - step) < 1e-9), 6)
        )
        step *= factor
    return decimals


def _rate_of_key(key):
    """The rate a `rate_...` checkpoint key encodes exactly, or None for other keys."""
    if not key.startswith("rate_"):
        return None
    try:
        return float(key[5:].replace("p", ".").replace("m", "-"))
    except ValueError:
        return None


def checkpoint_file_stem(key, decimals=3):
    """The file name (without extension) of checkpoint `key`.

    A rate's checkpoint reads as the rate to the search grid's precision plus
    8 hex digits of a hash of the exact rate, e.g. `rate_0.275_5c1d3f2a`
    (rates that round alike keep apart); other keys (`start`, `last_3`) are
    their own names.
    """
    rate = _rate_of_key(key)
    if rate is None:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return f"rate_{rate:.{decimals}f}_{digest}"


class CheckpointStore:
    """Saves and restores checkpoints by key, in memory or in a directory.

    Args:
        directory: where to write `<key>.weights.npz`, `<key>.json` (and
            `<key>.optimizer.npz` for resume points); None
            keeps the checkpoints in memory (lost when the process ends).
        read_only: keep new checkpoints in memory and only read `directory`
            (a non-chief worker of a multi-worker run: the chief writes the
            files, every worker resumes from them).
        decimals: decimals of the rate in a rate checkpoint's file name (see
            `checkpoint_file_stem`).

    Checkpoints written by tf_aat 0.1.0 under the key itself
    (`rate_0p2137....json`) are still found when a search resumes.
    """

    def __init__(self, directory=None, read_only=False, decimals=3):
        self.directory = directory
        self.read_only = bool(read_only) and directory is not None
        self.decimals = int(decimals)
        self._memory = {}

    def _stem(self, key):
        stem = checkpoint_file_stem(key, self.decimals)
        if stem != key and not os.path.exists(os.path.join(self.directory, f"{stem}.json")):
            if os.path.exists(os.path.join(self.directory, f"{key}.json")):
                return key  # written by tf_aat 0.1.0, under the key itself
        return stem

    def weights_path(self, key):
        return os.path.join(self.directory, f"{self._stem(key)}.weights.npz")

    def _metadata_path(self, key):
        return os.path.join(self.directory, f"{self._stem(key)}.json")

    def _optimizer_path(self, key):
        return os.path.join(self.directory, f"{self._stem(key)}.optimizer.npz")

    def save(self, key, model, ctrl, optimizer=None, **metadata):
        """Saves the model and the controller under `key`.

        With `optimizer` (a built Keras optimizer) its variables are saved too:
        the step count (so learning-rate schedules continue where they were)
        and the slots (momentum, Adam moments).
        """
        entry = {"key": key, "controller_state": controller_state(ctrl), **metadata}
        if self.directory is None or self.read_only:
            self._memory[key] = ([w.copy() for w in model.get_weights()], entry)
            return None
        # `model.get_weights()`, not `model.save_weights()`: Keras puts the
        # optimizer's variables into the latter and `load_weights` restores them.
        os.makedirs(self.directory, exist_ok=True)
        path = self.weights_path(key)
        with _atomic_file(path) as file:
            np.savez(file, *model.get_weights())
        if optimizer is not None and getattr(optimizer, "built", False):
            state = optimizer_state_variables(optimizer)
            with _atomic_file(self._optimizer_path(key)) as file:
                np.savez(file, *[np.asarray(v.numpy()) for v in state])
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
        values = _load_npz(path, "optimizer state")
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
        if self.directory is None or key in self._memory:
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
            entry = _load_json(metadata_path, "checkpoint")
            if entry.get("key", key) != key:
                raise CheckpointError(
                    f"The checkpoint file {metadata_path} holds the checkpoint "
                    f"{entry.get('key')!r}, not {key!r}: two rates share its name. Start "
                    "the search again in a new log_dir."
                )
            model.set_weights(_load_npz(self.weights_path(key), "checkpoint weights"))
            self._restore_optimizer(key, model, optimizer)
        load_controller_state(ctrl, entry["controller_state"])
        return entry

    def delete(self, key):
        if self.directory is None or self.read_only:
            self._memory.pop(key, None)
            return
        for path in (self.weights_path(key), self._metadata_path(key), self._optimizer_path(key)):
            if os.path.exists(path):
                os.remove(path)
