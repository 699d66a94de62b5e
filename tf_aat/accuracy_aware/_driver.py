"""What the runner and the callback share: applying the search's decisions.

`SearchDriver` owns the search, the checkpoint store, the resume state and
the reporting; the runner and the callback only tell it when an epoch
begins and ends.
"""

import json
import logging
import os

from tf_aat.accuracy_aware._checkpoints import (
    CheckpointStore,
    load_controller_state,
    write_json_atomically,
)
from tf_aat.accuracy_aware._reporting import TensorBoardLogger, log_epoch, plot_result
from tf_aat.accuracy_aware._search import AccuracyAwareSearch

logger = logging.getLogger("tf_aat.accuracy_aware")

STATE_FILE = "accuracy_aware_state.json"
RESULT_FILE = "accuracy_aware_result.json"
SUMMARY_FILE = "accuracy_aware_summary.txt"
PLOT_FILE = "accuracy_aware.png"
_RATE_TOLERANCE = 1e-9


def _scheduler_levels(ctrl):
    scheduler = getattr(ctrl, "scheduler", None)
    current = getattr(scheduler, "current_level", None)
    target = getattr(scheduler, "target_level", None)
    return current, target


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
    ):
        self.ctrl = ctrl
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
            os.path.join(log_dir, "checkpoints") if log_dir is not None else None
        )
        self.tensorboard = TensorBoardLogger(tensorboard_writer, log_dir)
        self.scaler = None
        self.search = None
        self.user_checkpoints = {}
        self._last_key = None

    # -------------------------------------------------------------- phases

    def begin(self, model, scaler, owner=None):
        """Starts or resumes the search; returns the next epoch's index."""
        self.scaler = scaler
        self._owner = owner
        state_path = self._state_path()
        if self.resume and state_path and os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as file:
                state = json.load(file)
            self.search = AccuracyAwareSearch.from_dict(state["search"])
            self.user_checkpoints = state.get("user_checkpoints", {})
            self._last_key = state["last_checkpoint"]
            self.store.restore(self._last_key, model, self.ctrl, optimizer=self._optimizer(model))
            if not self.search.scheduler_active:
                self._disable_scheduler()
            scaler.apply(self.search.learning_rate_scale)
            logger.info(
                "Resuming the accuracy-aware search from %s after %d epochs (phase %s).",
                state_path,
                self.search.epochs_trained,
                self.search.phase,
            )
            return self.search.epochs_trained
        if self.resume:
            logger.warning(
                "resume=True but there is no saved search state at %s; starting anew.",
                state_path,
            )
        _, target = _scheduler_levels(self.ctrl)
        self.search = AccuracyAwareSearch(
            self.params,
            self.uncompressed_metric,
            maximal_rate=getattr(self.ctrl, "maximal_compression_rate", None),
            minimal_rate=getattr(self.ctrl, "minimal_compression_rate", None),
            target_rate=target,
        )
        decision = self.search.start(float(self.ctrl.compression_rate))
        self._apply(decision, model)
        self._save_resume_state(model)
        return 0

    def epoch_begin(self, epoch):
        """Lets the user's schedule set the rate while it drives it."""
        if self.search.scheduler_active:
            scheduler = getattr(self.ctrl, "scheduler", None)
            if scheduler is not None:
                scheduler.epoch_step(epoch)

    def epoch_end(self, model, epoch, metric, end_phase=False):
        """Feeds one epoch's metric to the search and applies its decision."""
        rate = float(self.ctrl.compression_rate)
        current, target = _scheduler_levels(self.ctrl)
        target_reached = None
        if current is not None and target is not None:
            target_reached = float(current) >= float(target) - _RATE_TOLERANCE
        decision = self.search.on_epoch_end(
            epoch, rate, metric, target_reached=target_reached, end_phase=end_phase
        )
        row = self.search.history[-1]
        self._apply(decision, model)
        log_epoch(row, self.verbose)
        self.tensorboard.write(row, current_rate=float(self.ctrl.compression_rate))
        self._save_resume_state(model)
        return decision, row

    def stop(self, model, reason):
        """Ends an unfinished search now (the training loop ran out)."""
        if self.search is not None and not self.search.finished:
            self._apply(self.search.stop(reason), model)
            self._save_resume_state(model)

    def finish(self, model):
        """Writes the summary, the result JSON and the plot; returns the result."""
        result = self.search.result()
        summary = str(result)
        logger.info("%s", summary)
        if self.verbose:
            print(summary, flush=True)
        if self.log_dir is not None:
            with open(os.path.join(self.log_dir, SUMMARY_FILE), "w", encoding="utf-8") as file:
                file.write(summary + "\n")
            write_json_atomically(os.path.join(self.log_dir, RESULT_FILE), result.to_dict())
            if result.history:
                plot_result(result, os.path.join(self.log_dir, PLOT_FILE))
        return result

    # ----------------------------------------------------------- internals

    def _state_path(self):
        return os.path.join(self.log_dir, STATE_FILE) if self.log_dir else None

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
        if decision.disable_scheduler:
            self._disable_scheduler()
        if decision.restore_checkpoint is not None:
            entry = self.store.restore(decision.restore_checkpoint, model, self.ctrl)
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
        if decision.compression_rate is not None:
            self.ctrl.compression_rate = decision.compression_rate
        if decision.learning_rate_scale is not None:
            self.scaler.apply(decision.learning_rate_scale)

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
        if self.log_dir is None:
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
