"""The accuracy-aware search as a pure-Python, event-driven state machine.

Drivers (the Keras callback and the loop runner) train one epoch, evaluate
it and call `AccuracyAwareSearch.on_epoch_end`; the returned `Decision` says
what to do before the next epoch. The search never touches a model, so it
imports nothing from TensorFlow or Keras and its state is plain JSON.

Rules of the `adaptive_compression_level` mode:

1. Initial phase: `initial_training_phase_epochs` epochs with the user's
   compression schedule; the search only observes the rates it reports.
   The phase's outcome is the best metric seen at the rate it ended on.
2. Each later phase trains one rate chosen by the search for
   `patience_epochs` epochs (fewer with `advance_on_pass`), starting from
   the best checkpoint so far: the one of the highest passing rate, or the
   best-metric one while nothing passed. A rate's metric is the best metric
   over its epochs (its best checkpoint is what the search would return).
3. After a phase: up by `step` if its rate met the criterion, down if not.
   When the direction flips, the step and the learning rate are multiplied
   by their reduction factors, before moving.
4. A move past the maximal (minimal) rate is clamped to it, so the maximum
   is trained and evaluated too. The search stops when the step falls below
   `minimal_compression_rate_step`, at `maximal_total_epochs`, when it
   would go up from a maximum that passed or down from a minimum that
   failed.
5. A rate that a phase already evaluated is not trained again (this only
   happens after clamping): its recorded outcome decides the next move as
   if it had just been evaluated.

`early_exit` trains with the user's schedule and stops at the first epoch
whose rate reached the target and whose metric meets the criterion, or at
`maximal_total_epochs`. A controller without a rate (quantization alone)
reports the rate None: every epoch counts as at the target.

An epoch that is not finite (a NaN or infinite metric, or a fault the driver
reports: a non-finite loss or weights) fails and saves no checkpoint; the
decision restores the best checkpoint so far (`"start"`, the model before
training, if there is none) with fresh optimizer slots. In a search phase and
in the initial phase it ends the phase as a failure, so the search moves
down; in `early_exit` training goes on from the restored model.

`metric_mode="min"` is for lower-is-better metrics (a loss): the budget is
then the uncompressed metric plus the allowed degradation.

In both modes the result is the best checkpoint of the highest rate that met
the criterion; if none did, the best-metric checkpoint, flagged
`criterion_met=False` and logged as a warning.
"""

import logging
import math

from tf_aat.accuracy_aware._decision import (
    PHASE_EARLY_EXIT,
    PHASE_FINISHED,
    PHASE_INITIAL,
    PHASE_SEARCH,
    START_KEY,
    Decision,
    checkpoint_key,
    from_json_number,
    json_row,
)
from tf_aat.accuracy_aware._params import (
    EARLY_EXIT,
    AccuracyAwareParams,
)
from tf_aat.accuracy_aware._result import AccuracyAwareResult

logger = logging.getLogger("tf_aat.accuracy_aware")


_STATE_VERSION = 1
# Rates a move produces are rounded to this many decimals so that, for
# example, 0.1 + 0.2 is the rate 0.3 a user would write; checkpoint keys use
# the exact value of the rounded rate.
_RATE_DECIMALS = 12
_RATE_TOLERANCE = 1e-9
METRIC_MODES = ("max", "min")


class AccuracyAwareSearch:
    """Searches the highest compression rate that keeps the metric in budget.

    Args:
        params: an `AccuracyAwareParams`.
        uncompressed_metric: the metric of the uncompressed model (higher is
            better).
        maximal_rate: the controller's highest rate, if it has one; the
            lower of this and `params.maximal_compression_rate` is used.
        minimal_rate: the controller's lowest rate, if it has one.
        target_rate: `early_exit` only: the rate the schedule ends at
            (defaults to the maximal rate).
        metric_mode: `"max"` (higher is better, the default) or `"min"`.

    Example:

    ```python
    search = AccuracyAwareSearch(params, uncompressed_metric=0.95)
    decision = search.start(ctrl.compression_rate)
    for epoch in range(params.maximal_total_epochs):
        ...  # apply `decision`, train one epoch, evaluate `metric`
        decision = search.on_epoch_end(epoch, ctrl.compression_rate, metric)
        if decision.stop:
            break
    print(search.result())
    ```
    """

    def __init__(
        self,
        params,
        uncompressed_metric,
        maximal_rate=None,
        minimal_rate=None,
        target_rate=None,
        metric_mode="max",
    ):
        if not isinstance(params, AccuracyAwareParams):
            raise TypeError(f"`params` must be an AccuracyAwareParams. Received: params={params!r}")
        if metric_mode not in METRIC_MODES:
            raise ValueError(
                f"`metric_mode` must be one of {list(METRIC_MODES)}. "
                f"Received: metric_mode={metric_mode!r}"
            )
        self.params = params
        self.metric_mode = metric_mode
        self.uncompressed_metric = float(uncompressed_metric)
        if not math.isfinite(self.uncompressed_metric):
            raise ValueError(
                "The uncompressed model's metric must be a finite number. "
                f"Received: uncompressed_metric={uncompressed_metric!r}"
            )
        maximal = params.maximal_compression_rate
        if maximal_rate is not None:
            maximal = min(maximal, float(maximal_rate))
        minimal = params.minimal_compression_rate
        if minimal_rate is not None:
            minimal = max(minimal, float(minimal_rate))
        if minimal > maximal:
            raise ValueError(
                "The minimal compression rate is above the maximal one. "
                f"Received: minimal_rate={minimal}, maximal_rate={maximal}"
            )
        self.maximal_rate = maximal
        self.minimal_rate = minimal
        self.target_rate = maximal if target_rate is None else float(target_rate)
        self.budget = params.accuracy_budget(self.uncompressed_metric, self.lower_is_better)
        if not self.lower_is_better:
            params.check_metric_scale(self.uncompressed_metric)

        self.phase = None
        self.epochs_trained = 0
        self.phase_epochs = 0
        self.current_rate = None
        self.step = params.compression_rate_step
        self.direction = 0
        self.learning_rate_scale = 1.0
        self.rates = {}  # key -> best epoch at that rate
        self.evaluated = {}  # key -> outcome of a finished phase at that rate
        self.history = []
        self.final_key = None
        self.stop_reason = None

    # ------------------------------------------------------------------ API

    @property
    def lower_is_better(self):
        """Whether the metric is minimised (`metric_mode="min"`, e.g. a loss)."""
        return self.metric_mode == "min"

    @property
    def started(self):
        """Whether `start()` was called."""
        return self.phase is not None

    @property
    def finished(self):
        """Whether the search has stopped (see `stop_reason`)."""
        return self.phase == PHASE_FINISHED

    @property
    def scheduler_active(self):
        """Whether the user's compression schedule drives the rate now."""
        return self.phase in (PHASE_INITIAL, PHASE_EARLY_EXIT)

    def meets_criterion(self, metric):
        """Whether `metric` is within the accuracy budget of the uncompressed metric.

        Args:
            metric: a validation metric, in the units of the uncompressed one.

        Returns:
            True when the degradation (an increase in `"min"` mode) is within
            the configured maximal degradation.
        """
        return self.params.meets_criterion(metric, self.uncompressed_metric, self.lower_is_better)

    def start(self, rate):
        """Starts the search; `rate` is the controller's rate before training."""
        if self.started:
            raise RuntimeError("The search was already started.")
        if self.params.mode == EARLY_EXIT:
            self.phase = PHASE_EARLY_EXIT
            return Decision(phase=self.phase)
        if self.params.initial_training_phase_epochs > 0:
            self.phase = PHASE_INITIAL
            return Decision(phase=self.phase)
        # No initial phase: the first searched rate is the controller's.
        self.phase = PHASE_SEARCH
        self.current_rate = self._clamp(float(rate))
        return Decision(
            disable_scheduler=True, compression_rate=self.current_rate, phase=self.phase
        )

    def on_epoch_end(self, epoch, rate, metric, target_reached=None, end_phase=False, fault=None):
        """Records one evaluated epoch and returns what to do next.

        Args:
            epoch: the epoch's index, for the history.
            rate: the controller's compression rate during the epoch (used
                while the schedule drives the rate; a search phase uses the
                rate it selected).
            metric: the validation metric of the epoch, higher is better.
            target_reached: `early_exit` only: whether the schedule reached
                its target; None compares `rate` with `target_rate`.
            end_phase: end the current phase now (for an early-stopping
                signal from the user).
            fault: why the epoch is not usable although its metric may be
                finite (e.g. "the loss is nan"); None if it is. A
                non-finite metric is a fault by itself.
        """
        if not self.started:
            self.start(rate)
        if self.finished:
            raise RuntimeError("The search has finished; no more epochs are expected.")
        metric = float(metric)
        if fault is None and not math.isfinite(metric):
            fault = f"the metric is {metric}"
        if self.phase != PHASE_SEARCH:
            rate = None if rate is None else float(rate)
        else:
            rate = self.current_rate
        passed = fault is None and self.meets_criterion(metric)
        key = checkpoint_key(rate)
        save = None
        best = self.rates.get(key)
        if fault is None and (best is None or self._better(metric, best["metric"])):
            self.rates[key] = {
                "rate": rate,
                "metric": metric,
                "epoch": int(epoch),
                "passed": passed,
                "checkpoint": key,
            }
            save = key
        self.history.append(
            {
                "epoch": int(epoch),
                "phase": self.phase,
                "rate": rate,
                "metric": metric,
                "budget": self.budget,
                "passed": passed,
                "step": self.step if self.phase == PHASE_SEARCH else None,
                "learning_rate_scale": self.learning_rate_scale,
            }
        )
        self.epochs_trained += 1
        self.phase_epochs += 1
        out_of_epochs = self.epochs_trained >= self.params.maximal_total_epochs
        faulty = fault is not None
        if faulty:
            logger.warning(
                "Accuracy-aware epoch %d at rate %r is not finite (%s): it counts as a "
                "failure, and training goes on from checkpoint %r with fresh optimizer "
                "slots%s.",
                epoch,
                rate,
                fault,
                self._restore_key(),
                "" if self.phase == PHASE_EARLY_EXIT else " at a lower rate",
            )

        if self.phase == PHASE_EARLY_EXIT:
            if target_reached is None:
                target_reached = rate is None or rate >= self.target_rate - _RATE_TOLERANCE
            if target_reached and passed:
                reason = (
                    "the criterion was met" if rate is None else "the target rate met the criterion"
                )
                return self._finish(reason, save)
            if out_of_epochs or end_phase:
                return self._finish(self._epochs_reason(end_phase), save, reset_optimizer=faulty)
            if faulty:
                return Decision(
                    restore_checkpoint=self._restore_key(), reset_optimizer=True, phase=self.phase
                )
            return Decision(save_checkpoint=save, phase=self.phase)

        if self.phase == PHASE_INITIAL:
            if (
                self.phase_epochs >= self.params.initial_training_phase_epochs
                or end_phase
                or faulty
            ):
                self.current_rate = rate
                return self._next_rate(save, disable_scheduler=True, fault=faulty)
        elif faulty:
            return self._next_rate(save, disable_scheduler=False, fault=True)
        elif (
            self.phase_epochs >= self.params.patience_epochs
            or end_phase
            or (passed and self.params.advance_on_pass)
        ):
            return self._next_rate(save, disable_scheduler=False)
        if out_of_epochs:
            return self._finish(self._epochs_reason(False), save)
        return Decision(save_checkpoint=save, phase=self.phase)

    def stop(self, reason):
        """Ends the search now (e.g. the training loop ran out of epochs)."""
        if not self.started:
            raise RuntimeError("The search was never started.")
        if self.finished:
            raise RuntimeError("The search has already finished.")
        return self._finish(reason, None)

    def best_checkpoint(self):
        """Key of the highest passing rate's best epoch, else the best metric's."""
        if not self.rates:
            return None
        passing = [entry for entry in self.rates.values() if entry["passed"]]
        if passing:
            entry = max(passing, key=lambda e: (_rate_order(e["rate"]), self._score(e["metric"])))
        else:
            entry = max(
                self.rates.values(),
                key=lambda e: (self._score(e["metric"]), -_rate_order(e["rate"])),
            )
        return entry["checkpoint"]

    def result(self):
        """Returns an `AccuracyAwareResult` (the best so far if not finished)."""
        key = self.final_key or self.best_checkpoint()
        entry = self.rates.get(key) if key else None
        return AccuracyAwareResult(
            compression_rate=entry["rate"] if entry else None,
            compressed_metric=entry["metric"] if entry else None,
            uncompressed_metric=self.uncompressed_metric,
            accuracy_budget=self.budget,
            criterion_met=bool(entry and entry["passed"]),
            epochs=self.epochs_trained,
            checkpoint=key,
            stop_reason=self.stop_reason,
            mode=self.params.mode,
            rates=sorted(
                (dict(e) for e in self.rates.values()), key=lambda e: _rate_order(e["rate"])
            ),
            history=[dict(row) for row in self.history],
        )

    def to_dict(self):
        """Returns the whole state as JSON-serialisable data."""
        return {
            "version": _STATE_VERSION,
            "params": self.params.to_dict(),
            "uncompressed_metric": self.uncompressed_metric,
            "maximal_rate": self.maximal_rate,
            "minimal_rate": self.minimal_rate,
            "target_rate": self.target_rate,
            "metric_mode": self.metric_mode,
            "phase": self.phase,
            "epochs_trained": self.epochs_trained,
            "phase_epochs": self.phase_epochs,
            "current_rate": self.current_rate,
            "step": self.step,
            "direction": self.direction,
            "learning_rate_scale": self.learning_rate_scale,
            "rates": {key: json_row(entry) for key, entry in self.rates.items()},
            "evaluated": dict(self.evaluated),
            "history": [json_row(row) for row in self.history],
            "final_key": self.final_key,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, state):
        """Rebuilds a search from `to_dict()`'s output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"Unsupported search state version; expected {_STATE_VERSION}. "
                f"Received: version={state.get('version')!r}"
            )
        search = cls(
            AccuracyAwareParams(**state["params"]),
            state["uncompressed_metric"],
            maximal_rate=state["maximal_rate"],
            minimal_rate=state["minimal_rate"],
            target_rate=state["target_rate"],
            metric_mode=state.get("metric_mode", "max"),
        )
        for name in (
            "phase",
            "epochs_trained",
            "phase_epochs",
            "current_rate",
            "step",
            "direction",
            "learning_rate_scale",
            "final_key",
            "stop_reason",
        ):
            setattr(search, name, state[name])
        search.rates = {
            key: {**entry, "metric": from_json_number(entry["metric"])}
            for key, entry in state["rates"].items()
        }
        search.evaluated = dict(state["evaluated"])
        search.history = [
            {**row, "metric": from_json_number(row["metric"])} for row in state["history"]
        ]
        return search

    # ------------------------------------------------------------ internals

    def _clamp(self, rate):
        return min(max(rate, self.minimal_rate), self.maximal_rate)

    def _epochs_reason(self, end_phase):
        if end_phase:
            return "early stopping was requested"
        return f"maximal_total_epochs ({self.params.maximal_total_epochs}) reached"

    def _better(self, metric, best):
        if not math.isfinite(metric):
            return False
        if best is None or not math.isfinite(best):
            return True
        return metric < best if self.lower_is_better else metric > best

    def _score(self, metric):
        """Higher is better whatever the mode; non-finite metrics score lowest."""
        if metric is None or not math.isfinite(metric):
            return -math.inf
        return -metric if self.lower_is_better else metric

    def _restore_key(self):
        return self.best_checkpoint() or START_KEY

    def _next_rate(self, save, disable_scheduler, fault=False):
        """Ends a phase at `self.current_rate` and picks the next rate.

        With `fault` the phase failed whatever its earlier epochs scored.
        """
        if self.epochs_trained >= self.params.maximal_total_epochs:
            self.evaluated[checkpoint_key(self.current_rate)] = (
                False if fault else self._rate_passed(self.current_rate)
            )
            return self._finish(
                self._epochs_reason(False), save, disable_scheduler, reset_optimizer=fault
            )
        old_scale = self.learning_rate_scale
        rate = self.current_rate
        passed = False if fault else self._rate_passed(rate)
        # Bounded: each pass either moves to a new rate or flips and shrinks
        # the step; the guard only protects against a logic error.
        for _ in range(10000):
            self.evaluated[checkpoint_key(rate)] = passed
            direction = 1 if passed else -1
            if self.direction and direction != self.direction:
                self.step *= self.params.step_reduction_factor
                self.learning_rate_scale *= self.params.lr_reduction_factor
            self.direction = direction
            if self.step < self.params.minimal_compression_rate_step - _RATE_TOLERANCE * 1e-3:
                reason = (
                    f"the step {self.step:g} fell below minimal_compression_rate_step "
                    f"({self.params.minimal_compression_rate_step:g})"
                )
                return self._finish(reason, save, disable_scheduler, reset_optimizer=fault)
            candidate = round(rate + direction * self.step, _RATE_DECIMALS)
            if candidate > self.maximal_rate:
                candidate = self.maximal_rate
                if self.evaluated.get(checkpoint_key(candidate)) is True:
                    reason = f"the maximal rate {candidate:g} met the criterion"
                    return self._finish(reason, save, disable_scheduler, reset_optimizer=fault)
            elif candidate < self.minimal_rate:
                candidate = self.minimal_rate
                if self.evaluated.get(checkpoint_key(candidate)) is False:
                    reason = f"the minimal rate {candidate:g} missed the criterion"
                    return self._finish(reason, save, disable_scheduler, reset_optimizer=fault)
            known = self.evaluated.get(checkpoint_key(candidate))
            if known is None:
                break
            rate, passed = candidate, known
        else:  # pragma: no cover
            raise RuntimeError("The accuracy-aware search did not converge.")
        self.current_rate = candidate
        self.phase = PHASE_SEARCH
        self.phase_epochs = 0
        scale = self.learning_rate_scale if self.learning_rate_scale != old_scale else None
        return Decision(
            save_checkpoint=save,
            disable_scheduler=disable_scheduler,
            restore_checkpoint=self._restore_key(),
            compression_rate=candidate,
            learning_rate_scale=scale,
            phase=self.phase,
            reset_optimizer=fault,
        )

    def _rate_passed(self, rate):
        entry = self.rates.get(checkpoint_key(rate))
        return bool(entry and entry["passed"])

    def _finish(self, reason, save, disable_scheduler=False, reset_optimizer=False):
        self.phase = PHASE_FINISHED
        self.stop_reason = reason
        self.final_key = self.best_checkpoint()
        result = self.result()
        if result.criterion_met:
            logger.info(
                "Accuracy-aware search finished (%s): compression rate %r, metric %.6g "
                "(budget %.6g).",
                reason,
                result.compression_rate,
                result.compressed_metric,
                self.budget,
            )
        else:
            logger.warning(
                "Accuracy-aware search finished (%s) and NO compression rate met the "
                "criterion (budget %.6g, uncompressed metric %.6g). Returning the "
                "best-metric model: rate %r, metric %.6g, which VIOLATES the criterion.",
                reason,
                self.budget,
                self.uncompressed_metric,
                result.compression_rate,
                result.compressed_metric if result.compressed_metric is not None else math.nan,
            )
        return Decision(
            save_checkpoint=save,
            disable_scheduler=disable_scheduler,
            # Nothing usable was saved (every epoch faulted): back to the start.
            restore_checkpoint=self.final_key or START_KEY,
            stop=True,
            phase=self.phase,
            reset_optimizer=reset_optimizer,
        )


def _rate_order(rate):
    """Sort key of a rate; None (a controller without a rate) sorts lowest."""
    return -math.inf if rate is None else rate


__all__ = ["AccuracyAwareSearch", "Decision", "checkpoint_key"]
