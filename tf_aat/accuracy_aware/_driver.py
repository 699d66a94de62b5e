"""What the runner and the callback share: applying the search's decisions.

`SearchDriver` owns the search, the checkpoint store, the resume state and
the reporting; the runner and the callback only tell it when an epoch
begins and ends.
"""

import dataclasses
import json
import logging
import math
import os

import numpy as np

from tf_aat import _distribute
from tf_aat._errors import ConfigError
from tf_aat.accuracy_aware._checkpoints import (
    CheckpointError,
    CheckpointStore,
    grid_decimals,
    load_controller_state,
    non_finite_variables,
    reset_optimizer_slots,
    write_json_atomically,
)
from tf_aat.accuracy_aware._decision import START_KEY
from tf_aat.accuracy_aware._params import ADAPTIVE_COMPRESSION_LEVEL
from tf_aat.accuracy_aware._reporting import TensorBoardLogger, log_epoch, plot_result, say
from tf_aat.accuracy_aware._search import AccuracyAwareSearch

logger = logging.getLogger("tf_aat.accuracy_aware")

STATE_FILE = "accuracy_aware_state.json"
RESULT_FILE = "accuracy_aware_result.json"
SUMMARY_FILE = "accuracy_aware_summary.txt"
PLOT_FILE = "accuracy_aware.png"
_RATE_TOLERANCE = 1e-9


# The phase as a number for TensorBoard's scalars (its name is in the text summary).
_PHASE_CODES = {"initial": 0, "search": 1, "early_exit": 2, "finished": 3}


def _statistics_dict(ctrl):
    """`ctrl.statistics().to_dict()`, or None for a controller without statistics."""
    try:
        return ctrl.statistics().to_dict()
    except (AttributeError, NotImplementedError, TypeError):
        return None


def _scheduler_levels(ctrl):
    scheduler = getattr(ctrl, "scheduler", None)
    current = getattr(scheduler, "current_level", None)
    target = getattr(scheduler, "target_level", None)
    if target is None:
        # A composite scheduler without levels of its own: the first child
        # schedule that has them (the rated algorithm's).
        for child in getattr(scheduler, "schedulers", None) or ():
            if getattr(child, "target_level", None) is not None:
                return getattr(child, "current_level", None), child.target_level
    return current, target


def controller_rate(ctrl):
    """The controller's compression rate, or None if it has none (quantization)."""
    try:
        rate = ctrl.compression_rate
    except AttributeError:
        return None
    return None if rate is None else float(rate)


def check_controller(ctrl, params):
    """Refuses a search mode the controller cannot run.

    `adaptive_compression_level` varies a compression rate, so it needs an
    algorithm that has one (filter pruning); `early_exit` runs with any
    controller.
    """
    if params.mode == ADAPTIVE_COMPRESSION_LEVEL and controller_rate(ctrl) is None:
        raise ConfigError(
            "accuracy_aware_training.mode",
            "'early_exit' for a controller without a compression rate",
            ADAPTIVE_COMPRESSION_LEVEL,
            hint=(
                f"{type(ctrl).__name__} has no `compression_rate` to search (quantization "
                "alone has none): the adaptive_compression_level mode needs an algorithm "
                "with a rate, such as filter_pruning. Use the early_exit mode, which trains "
                "until the criterion is met or maximal_total_epochs."
            ),
        )


def metric_value(value, source="validate_fn"):
    """`value` as a float; a clear TypeError for what is not one number."""
    if isinstance(value, (str, bytes, dict, list, tuple)) or value is None:
        hint = ""
        if isinstance(value, dict):
            hint = (
                f" It returned a dict with the keys {sorted(map(str, value))}: return one "
                "of its values, e.g. `return metrics['accuracy']`."
            )
        elif isinstance(value, (str, bytes)):
            hint = " A string is not a metric, even one that spells a number."
        elif value is None:
            hint = " Did the function forget its `return`?"
        raise TypeError(
            f"{source} must return the validation metric as one number (higher is "
            f"better).{hint} Received: {type(value).__name__} {value!r}"
        )
    try:
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.size != 1 or array.dtype.kind not in "biuf":
            raise TypeError
        return float(array.reshape(()))
    except (TypeError, ValueError):
        raise TypeError(
            f"{source} must return the validation metric as one number (higher is "
            f"better). Received: {type(value).__name__} {value!r}"
        ) from None


def _looks_like_percent_vs_fraction(baseline, metric):
    """Whether one of the two is on a 0..100 scale and the other on 0..1."""

    def percent(value):
        return 1.0 < value <= 100.0

    def fraction(value):
        return 0.0 <= value <= 1.0

    if percent(baseline) and fraction(metric) and baseline > 10.0 * metric:
        return True
    return fraction(baseline) and percent(metric) and metric > 10.0 * baseline


class SearchDriver:
    """Applies `Decision`s to a model, its controller and its optimizer."""

    def __init__(
        self,
        ctrl,
        params,
        uncompressed_metric,
        log_dir=None,
        resume=False,
        verbose=1,
        tensorboard_writer=None,
        dump_checkpoint_fn=None,
        load_checkpoint_fn=None,
        optimizer=None,
        metric_mode="max",
        metric_name="the validation metric",
    ):
        self.ctrl = ctrl
        self.metric_mode = metric_mode
        self.metric_name = metric_name
        # Saved with the resume state (default: the model's compiled optimizer).
        self.optimizer = optimizer
        self.params = params
        self.uncompressed_metric = float(uncompressed_metric)
        self.log_dir = log_dir
        self.resume = resume
        self.verbose = verbose
        self.dump_checkpoint_fn = dump_checkpoint_fn
        self.load_checkpoint_fn = load_checkpoint_fn
        self.store = CheckpointStore(
            os.path.join(log_dir, "checkpoints") if log_dir is not None else None,
            decimals=grid_decimals(params),
        )
        self.tensorboard = TensorBoardLogger(tensorboard_writer, log_dir)
        self.scaler = None
        self.search = None
        self.user_checkpoints = {}
        self._last_key = None
        self.writes_files = True
        # Lines held back while a Keras progress bar owns the terminal line.
        self.pending_messages = None

    def hold_messages(self):
        """Holds the search's lines back until `flush_messages()` (inside `fit()`)."""
        if self.pending_messages is None:
            self.pending_messages = []

    def flush_messages(self):
        """Shows the lines held back, in order."""
        pending, self.pending_messages = self.pending_messages, None
        for message in pending or ():
            say(message, self.verbose)
        if pending is not None:
            self.pending_messages = []

    def _say(self, message):
        say(message, self.verbose, self.pending_messages)

    # -------------------------------------------------------------- phases

    def begin(self, model, scaler, owner=None):
        """Starts or resumes the search; returns the next epoch's index."""
        self.scaler = scaler
        self._owner = owner
        self._setup_workers(model)
        epoch = self._begin(model)
        self._check_workers_agree(model)
        return epoch

    def _setup_workers(self, model):
        """Under MultiWorkerMirroredStrategy only the chief writes files; the other
        workers keep their checkpoints in memory and resume from the chief's."""
        self.writes_files = _distribute.writes_files(model)
        if self.writes_files:
            return
        if self.dump_checkpoint_fn is not None or self.load_checkpoint_fn is not None:
            raise ValueError(
                "dump_checkpoint_fn and load_checkpoint_fn are not supported under "
                "MultiWorkerMirroredStrategy: only the chief would write the user's "
                "checkpoints, and the other workers could not load them. Leave them out; "
                "the search's own checkpoints restore the weights, masks and rate on "
                "every worker."
            )
        if self.log_dir is not None:
            self.store = CheckpointStore(
                os.path.join(self.log_dir, "checkpoints"),
                read_only=True,
                decimals=self.store.decimals,
            )
        self.tensorboard = TensorBoardLogger(None, None)

    def _check_workers_agree(self, model):
        """Every worker must start from the same point (a resume reads the chief's files)."""
        disagreement = _distribute.agree_across_workers(model, self.search.epochs_trained)
        if disagreement is not None:
            mean, own = disagreement
            raise CheckpointError(
                f"The workers of this MultiWorkerMirroredStrategy run start the search at "
                f"different epochs: {_distribute.worker_description(model)} at epoch "
                f"{own:g}, the workers' mean {mean:g}. With resume=True every worker reads "
                f"the chief's files in log_dir={self.log_dir!r}: give all workers the same "
                "log_dir on a shared filesystem (or a copy of the chief's), or start anew "
                "with resume=False on every worker."
            )

    def _begin(self, model):
        state_path = self._state_path()
        if self.resume and state_path and os.path.exists(state_path):
            state = self._read_state(state_path)
            self._check_same_config(state["search"], state_path)
            self.search = AccuracyAwareSearch.from_dict(state["search"])
            self.user_checkpoints = state.get("user_checkpoints", {})
            self._last_key = state["last_checkpoint"]
            self.store.restore(self._last_key, model, self.ctrl, optimizer=self._optimizer(model))
            if not self.search.scheduler_active:
                self._disable_scheduler()
            self.scaler.apply(self.search.learning_rate_scale)
            if self.search.finished:
                # The result's own checkpoint, not one more epoch of training.
                self.store.restore(self.search.final_key or START_KEY, model, self.ctrl)
                self._disable_scheduler()
                self._say(
                    f"[accuracy-aware] The search in {state_path} had already finished "
                    f"({self.search.stop_reason}); returning its result without training. "
                    + self._restored_text()
                )
                return self.search.epochs_trained
            self._say(
                f"[accuracy-aware] Resumed the search from {state_path}: " + self._restored_text()
            )
            return self.search.epochs_trained
        if self.resume:
            logger.warning(
                "resume=True but there is no saved search state at %s; starting anew.",
                state_path,
            )
        check_controller(self.ctrl, self.params)
        _, target = _scheduler_levels(self.ctrl)
        has_rate = controller_rate(self.ctrl) is not None
        self.search = AccuracyAwareSearch(
            self.params,
            self.uncompressed_metric,
            maximal_rate=getattr(self.ctrl, "maximal_compression_rate", None) if has_rate else None,
            minimal_rate=getattr(self.ctrl, "minimal_compression_rate", None) if has_rate else None,
            target_rate=target,
            metric_mode=self.metric_mode,
        )
        # What a fault restores before any epoch has given a checkpoint.
        self.store.save(START_KEY, model, self.ctrl, epoch=0)
        decision = self.search.start(controller_rate(self.ctrl))
        self._apply(decision, model)
        self._save_resume_state(model)
        return 0

    def epoch_begin(self, epoch):
        """Lets the user's schedule set the rate while it drives it."""
        if self.search.scheduler_active:
            scheduler = getattr(self.ctrl, "scheduler", None)
            if scheduler is not None:
                scheduler.epoch_step(epoch)

    def epoch_end(self, model, epoch, metric, end_phase=False, loss=None):
        """Feeds one epoch's metric to the search and applies its decision.

        `loss`: the epoch's training loss, if known; a non-finite loss, or
        non-finite weights, make the epoch a fault (it fails, and the last
        good checkpoint comes back with fresh optimizer slots).
        """
        metric = float(metric)
        if self.search.epochs_trained == 0 and math.isfinite(metric):
            self._check_metric_scale(metric)
        rate = controller_rate(self.ctrl)
        current, target = _scheduler_levels(self.ctrl)
        target_reached = None
        if current is not None and target is not None:
            target_reached = float(current) >= float(target) - _RATE_TOLERANCE
        fault = self._fault(model, loss)
        decision = self.search.on_epoch_end(
            epoch, rate, metric, target_reached=target_reached, end_phase=end_phase, fault=fault
        )
        row = self.search.history[-1]
        self._apply(decision, model)
        log_epoch(row, self.verbose, self.pending_messages)
        if self.tensorboard.active:
            self.tensorboard.write(
                row,
                current_rate=controller_rate(self.ctrl),
                statistics=_statistics_dict(self.ctrl),
                state=self._state_scalars(),
            )
        self._save_resume_state(model)
        return decision, row

    def stop(self, model, reason):
        """Ends an unfinished search now (the training loop ran out)."""
        if self.search is not None and not self.search.finished:
            self._apply(self.search.stop(reason), model)
            self._save_resume_state(model)

    def finish(self, model, stripped_metric=None):
        """Writes the summary, the result JSON and the plot; returns the result."""
        result = self.search.result()
        if stripped_metric is not None:
            result = dataclasses.replace(result, stripped_metric=float(stripped_metric))
        summary = str(result)
        self._say(summary)
        if self.writes_files:
            self.tensorboard.write_result(result)
        if self.log_dir is not None and self.writes_files:
            with open(os.path.join(self.log_dir, SUMMARY_FILE), "w", encoding="utf-8") as file:
                file.write(summary + "\n")
            write_json_atomically(os.path.join(self.log_dir, RESULT_FILE), result.to_dict())
            if result.history:
                plot_result(result, os.path.join(self.log_dir, PLOT_FILE))
        return result

    # ----------------------------------------------------------- internals

    def _state_scalars(self):
        """The search state as numbers, for TensorBoard."""
        search = self.search
        key = search.best_checkpoint()
        best = next((e for e in search.rates.values() if e["checkpoint"] == key), None)
        state = {
            "phase": _PHASE_CODES.get(search.phase, -1),
            "epochs_trained": search.epochs_trained,
            "epochs_in_phase": search.phase_epochs,
            "direction": search.direction,
            "rates_evaluated": len(search.rates),
        }
        if best is not None and best["passed"] and best["rate"] is not None:
            state["best_passing_compression_rate"] = best["rate"]
        return state

    def _restored_text(self):
        """What a resume restored: epochs, phase, rate and the best result so far."""
        search = self.search
        rate = controller_rate(self.ctrl)
        parts = [
            f"{search.epochs_trained} epochs trained",
            f"phase {search.phase}",
            "compression rate " + ("-" if rate is None else f"{rate:.6g}"),
            f"learning rate scale {search.learning_rate_scale:.4g}",
        ]
        key = search.best_checkpoint()
        best = next((e for e in search.rates.values() if e["checkpoint"] == key), None)
        if best is None:
            parts.append("no epoch evaluated yet")
        else:
            rate_text = "-" if best["rate"] is None else f"{best['rate']:.6g}"
            parts.append(
                f"best so far: metric {best['metric']:.6g} at rate {rate_text} "
                f"(epoch {best['epoch']}, {'meets' if best['passed'] else 'does NOT meet'} "
                "the criterion)"
            )
        return "; ".join(parts) + "."

    def _state_path(self):
        return os.path.join(self.log_dir, STATE_FILE) if self.log_dir else None

    def _read_state(self, path):
        try:
            with open(path, encoding="utf-8") as file:
                state = json.load(file)
            if not isinstance(state, dict) or "search" not in state:
                raise ValueError("it holds no search state")
            return state
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as error:
            raise CheckpointError(
                f"The accuracy-aware resume state {path} is truncated or corrupt ({error}). "
                "It cannot be resumed: delete it (or use a new log_dir) and start the "
                "search again with resume=False."
            ) from None

    def _check_same_config(self, saved, path):
        """Refuses to resume a state saved with other search settings."""
        # How many checkpoints stay on disk may change between the runs.
        now = {
            **{
                f"accuracy_aware_training.{k}": v
                for k, v in self.params.to_dict().items()
                if k != "keep_checkpoints"
            },
            "uncompressed_model_accuracy": self.uncompressed_metric,
            "mode (min/max)": self.metric_mode,
        }
        before = {
            **{f"accuracy_aware_training.{k}": v for k, v in saved.get("params", {}).items()},
            "uncompressed_model_accuracy": saved.get("uncompressed_metric"),
            "mode (min/max)": saved.get("metric_mode", "max"),
        }
        differ = [key for key in now if before.get(key) != now[key]]
        if differ:
            details = "; ".join(
                f"{key}: saved {before.get(key)!r}, now {now[key]!r}" for key in differ
            )
            raise ValueError(
                f"resume=True, but the search saved in {path} ran with other settings: "
                f"{details}. Resume with the settings it was started with, or start a new "
                "search (a new log_dir, or resume=False)."
            )

    def _check_metric_scale(self, metric):
        """Refuses a baseline and a metric on different scales (percent vs 0..1)."""
        if self.metric_mode != "max":
            return
        if _looks_like_percent_vs_fraction(self.uncompressed_metric, metric):
            raise ValueError(
                f"The uncompressed model's accuracy ({self.uncompressed_metric:g}) and "
                f"{self.metric_name} of the first epoch ({metric:g}) look like different "
                "scales: one 0..100 (percent), the other 0..1. Give "
                "uncompressed_model_accuracy in the metric's own units (Keras accuracy "
                "is 0..1: e.g. 0.98, not 98.0)."
            )

    def _fault(self, model, loss):
        """Why the epoch is unusable although its metric came back, or None."""
        if loss is not None:
            loss = float(loss)
            if not math.isfinite(loss):
                return f"the loss is {loss}"
        bad = non_finite_variables(model.weights)
        if bad:
            return f"{len(bad)} weights are not finite, e.g. {bad[0]!r}"
        return None

    def _disable_scheduler(self):
        disable = getattr(self.ctrl, "disable_scheduler", None)
        if callable(disable):
            disable()

    def _apply(self, decision, model):
        if decision.save_checkpoint is not None:
            entry = self.search.rates[decision.save_checkpoint]
            self.store.save(
                decision.save_checkpoint,
                model,
                self.ctrl,
                metric=entry["metric"],
                epoch=entry["epoch"],
                rate=entry["rate"],
            )
            if self.dump_checkpoint_fn is not None and self.log_dir is not None:
                path = self.dump_checkpoint_fn(model, self.ctrl, self._owner, self.log_dir)
                if path is not None:
                    self.user_checkpoints[decision.save_checkpoint] = str(path)
            self._drop_old_checkpoints()
        if decision.disable_scheduler:
            self._disable_scheduler()
        if decision.restore_checkpoint is not None:
            entry = self.store.restore(decision.restore_checkpoint, model, self.ctrl)
            self._sanitize_optimizer(model, force=decision.reset_optimizer)
            user_path = self.user_checkpoints.get(decision.restore_checkpoint)
            if self.load_checkpoint_fn is not None and user_path is not None:
                self.load_checkpoint_fn(user_path, model)
                # The user's loader may not know the controller: restore it
                # again so that masks and rate agree.
                load_controller_state(self.ctrl, entry["controller_state"])
            if not self.search.scheduler_active:
                # A checkpoint from the initial phase carries an enabled
                # schedule in the controller's state.
                self._disable_scheduler()
        if decision.compression_rate is not None and controller_rate(self.ctrl) is not None:
            self.ctrl.compression_rate = decision.compression_rate
        if decision.learning_rate_scale is not None:
            self.scaler.apply(decision.learning_rate_scale)

    def _drop_old_checkpoints(self):
        """Keeps `keep_checkpoints` rate checkpoints: the best (the one the search
        restores and returns) and the most recently saved others."""
        keep = self.params.keep_checkpoints
        if keep is None:
            return
        best = self.search.best_checkpoint()
        recent = sorted(
            (entry for entry in self.search.rates.values() if entry["checkpoint"] != best),
            key=lambda entry: entry["epoch"],
            reverse=True,
        )
        for entry in recent[keep - 1 :]:
            self.store.delete(entry["checkpoint"])

    def _sanitize_optimizer(self, model, force):
        """Fresh optimizer slots after a fault, or when the slots are not finite."""
        optimizer = self._optimizer(model)
        if optimizer is None or not getattr(optimizer, "built", False):
            return
        if force or non_finite_variables(optimizer.variables):
            reset_optimizer_slots(optimizer)
            logger.warning(
                "The optimizer's slots (momentum, moments) were reset to their initial "
                "values after restoring the checkpoint (the step count is kept)."
            )

    def _optimizer(self, model):
        optimizer = self.optimizer or getattr(model, "optimizer", None)
        # Only Keras optimizers: their variables are what a resume needs.
        return (
            optimizer if hasattr(optimizer, "variables") and hasattr(optimizer, "build") else None
        )

    def _save_resume_state(self, model):
        """Saves the model as it enters the next epoch, then the search state.

        The state names the checkpoint it goes with and is replaced
        atomically, so a run killed at any point resumes from a consistent
        pair; the previous "last" checkpoint is deleted afterwards.
        """
        if self.log_dir is None or not self.writes_files:
            return
        key = f"last_{self.search.epochs_trained}"
        self.store.save(
            key,
            model,
            self.ctrl,
            optimizer=self._optimizer(model),
            epoch=self.search.epochs_trained,
        )
        state = {
            "search": self.search.to_dict(),
            "last_checkpoint": key,
            "user_checkpoints": self.user_checkpoints,
        }
        write_json_atomically(self._state_path(), state)
        if self._last_key is not None and self._last_key != key:
            self.store.delete(self._last_key)
        self._last_key = key
