"""The accuracy-aware search as a Keras callback for `model.fit()`."""

import logging

import keras

from tf_aat import _distribute
from tf_aat.accuracy_aware._driver import SearchDriver, check_controller, metric_value
from tf_aat.accuracy_aware._learning_rate import LearningRateScaler
from tf_aat.accuracy_aware._runner import resolve_accuracy_aware_params, stripped_metric

logger = logging.getLogger("tf_aat.accuracy_aware")

MODES = ("auto", "min", "max")
# Monitors that `mode="auto"` minimises when the metric object does not say
# (Keras metrics carry `_direction`): losses and errors.
_LOWER_IS_BETTER = (
    "loss",
    "error",
    "mse",
    "mae",
    "mape",
    "msle",
    "crossentropy",
    "hinge",
    "logcosh",
    "divergence",
)
# Monitors that are fractions in Keras (0..1), whatever the model.
_FRACTION_METRICS = ("accuracy", "acc", "auc", "precision", "recall")


def _metric_name(monitor):
    return monitor.removeprefix("val_")


def _mode_from_name(monitor):
    name = _metric_name(monitor).lower()
    if any(name == word or name.endswith(word) for word in _LOWER_IS_BETTER):
        return "min"
    return "max"


def _mode_from_model(model, monitor):
    """The direction Keras's metric object declares for `monitor`, or None."""
    name = _metric_name(monitor)
    for metric in getattr(model, "metrics", None) or ():
        for inner in [metric, *getattr(metric, "metrics", ())]:
            if getattr(inner, "name", None) == name and hasattr(inner, "_direction"):
                return "max" if inner._direction == "up" else "min"
    return None


class AccuracyAwareCallback(keras.callbacks.Callback):
    """Runs the accuracy-aware compression search inside `model.fit()`.

    At the end of every epoch the callback reads the monitored validation
    metric, feeds it to the search, and applies the search's decision: it
    saves the best checkpoint of each rate, restores the best checkpoint
    before a new rate, sets `compression_ctrl.compression_rate`, scales the
    learning rate (schedules included) and stops training when the search
    ends, leaving the model at the highest rate that met the criterion.
    During the initial phase it calls `compression_ctrl.scheduler.epoch_step`
    at the beginning of each epoch, so do not add another scheduler callback
    for the controller.

    Pass `epochs` to `fit()` at least as large as the search needs (e.g.
    `maximal_total_epochs`); if `fit()` ends first, the best model so far is
    restored. The epoch logs get `compression_rate` (the rate the epoch
    trained), `accuracy_budget`, `criterion_met` and `learning_rate_scale`.

    Args:
        compression_ctrl: the compression controller whose rate is searched.
        config: a `CompressionConfig`, a config dict or `AccuracyAwareParams`.
        uncompressed_model_accuracy: the uncompressed model's value of the
            monitored metric.
        monitor: key of the metric in the epoch logs.
        mode: `"auto"` (as `keras.callbacks.EarlyStopping`: minimise a
            loss-like monitor such as `val_loss`, maximise the others; a
            Keras metric's own direction wins), `"min"` or `"max"`. In
            `"min"` mode the allowed degradation is an increase of the
            monitor over `uncompressed_model_accuracy`.
        log_dir: directory for checkpoints, the resume state, the summary,
            the plot (`accuracy_aware.png`: rate and metric panels, the
            budget, the phases, the returned model circled) and TensorBoard
            events (`tensorboard/`); None keeps checkpoints in memory.
        resume: continue a killed run from the state in `log_dir` (what it
            restored is said in one line).
        verbose: show one line per epoch and the final summary (Keras's
            route: stdout, or absl logging when Keras's interactive logging
            is off; each line waits until the progress bar has finished
            its epoch). With 0 the lines go to the `tf_aat.accuracy_aware`
            logger only.
        tensorboard_writer: an optional `tf.summary` writer (else one under
            `log_dir`). Each epoch gets scalars `accuracy_aware/*` (rate,
            metric, budget, criterion met, step, learning rate scale),
            `accuracy_aware/state/*` (phase: 0 initial, 1 search, 2 early
            exit, 3 finished; epochs, direction, best passing rate) and
            `statistics/<algorithm>/*` (the numbers of
            `statistics().to_dict()`); the end, the result's table as text
            (`accuracy_aware/result`).
        validation_data: optional; the data you pass to `fit(validation_data=...)`
            (a tuple `(x, y)` or a dataset). Given, the end of the search
            re-measures the monitored metric on `compression_ctrl.strip_model(model)`
            (compiled like the model) into `result.stripped_metric`, beside the
            searched metric; Keras does not hand callbacks its validation data.

    Example:

    ```python
    callback = tf_aat.AccuracyAwareCallback(
        ctrl, config, uncompressed_model_accuracy=0.98, monitor="val_accuracy"
    )
    model.fit(x, y, validation_data=(x_val, y_val), epochs=100, callbacks=[callback])
    print(callback.result)
    ```
    """

    def __init__(
        self,
        compression_ctrl,
        config,
        uncompressed_model_accuracy,
        monitor="val_accuracy",
        log_dir=None,
        resume=False,
        verbose=1,
        tensorboard_writer=None,
        mode="auto",
        validation_data=None,
    ):
        super().__init__()
        self.validation_data = validation_data
        if resume and log_dir is None:
            raise ValueError("`resume=True` needs the `log_dir` of the run. Received: log_dir=None")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}")
        self.compression_ctrl = compression_ctrl
        self.config = config
        self.accuracy_aware_params = resolve_accuracy_aware_params(config)
        check_controller(compression_ctrl, self.accuracy_aware_params)
        _distribute.check_created_in_scope(compression_ctrl, "AccuracyAwareCallback")
        _distribute.check_fit_supported(compression_ctrl, "AccuracyAwareCallback")
        self.uncompressed_model_accuracy = metric_value(
            uncompressed_model_accuracy, "uncompressed_model_accuracy"
        )
        self.monitor = monitor
        self.mode = mode
        self._check_baseline_scale()
        self.log_dir = log_dir
        self.resume = resume
        self.verbose = verbose
        self.tensorboard_writer = tensorboard_writer
        self.driver = None
        self.result = None
        self._epoch = None
        self._skipped_train_function = None

    @property
    def search(self):
        """The running `AccuracyAwareSearch` (None before `fit()` starts)."""
        return None if self.driver is None else self.driver.search

    def _check_baseline_scale(self):
        """Refuses a percent baseline for a Keras metric that is a fraction."""
        name = _metric_name(self.monitor).lower()
        if self.mode == "min" or not any(name.endswith(word) for word in _FRACTION_METRICS):
            return
        if 1.0 < self.uncompressed_model_accuracy <= 100.0:
            raise ValueError(
                f"uncompressed_model_accuracy={self.uncompressed_model_accuracy:g} looks like "
                f"a percentage, but Keras reports {self.monitor!r} as a fraction in 0..1. "
                f"Pass uncompressed_model_accuracy={self.uncompressed_model_accuracy / 100:g} "
                "(the metric's own units)."
            )

    def _metric_mode(self):
        if self.mode != "auto":
            return self.mode
        return _mode_from_model(self.model, self.monitor) or _mode_from_name(self.monitor)

    def on_train_begin(self, logs=None):
        """Starts the search, or resumes it from `log_dir` when `resume=True`."""
        _distribute.check_training_strategy(self.model, "AccuracyAwareCallback")
        self.result = None
        self._skipped_train_function = None
        scaler = LearningRateScaler(getattr(self.model, "optimizer", None))
        if scaler.attach():
            # The schedule was wrapped; retrace so the train step reads it.
            self.model.make_train_function(force=True)
        self.driver = SearchDriver(
            self.compression_ctrl,
            self.accuracy_aware_params,
            self.uncompressed_model_accuracy,
            log_dir=self.log_dir,
            resume=self.resume,
            verbose=self.verbose,
            tensorboard_writer=self.tensorboard_writer,
            metric_mode=self._metric_mode(),
            metric_name=repr(self.monitor),
        )
        # Keras's progress bar finishes its epoch line after every callback's
        # on_epoch_end: the search's lines wait until then (next epoch, or the end).
        self.driver.hold_messages()
        self.driver.begin(self.model, scaler, owner=self)
        if self.driver.search.finished:
            # A resumed run that had finished: fit() still runs one batch
            # before it looks at `stop_training`, so that batch must not
            # train. The train function comes back in on_train_end.
            self._skipped_train_function = self.model.train_function
            self.model.train_function = _no_training
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        """Steps the user's schedule during the initial phase; stops `fit()` once the search has finished."""
        self.driver.flush_messages()
        if self.driver.search.finished:
            self.model.stop_training = True
            return
        # The search counts its own epochs so that a resumed run, whose
        # `fit()` starts again at 0, continues the schedule where it was.
        self._epoch = self.driver.search.epochs_trained
        self.driver.epoch_begin(self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        """Feeds the monitored metric to the search and applies its decision.

        Adds `compression_rate`, `accuracy_budget`, `criterion_met` and
        `learning_rate_scale` to `logs`; raises a `KeyError` naming the
        available keys when `monitor` is not in them.
        """
        logs = logs if logs is not None else {}
        if self.driver.search.finished or self._epoch is None:
            return
        if self.monitor not in logs:
            raise KeyError(
                f"AccuracyAwareCallback monitors {self.monitor!r}, which is not in the "
                f"epoch logs. Available keys: {sorted(logs)}. Pass validation data to "
                "fit() and set `monitor` to one of these keys."
            )
        metric = metric_value(logs[self.monitor], f"The monitored {self.monitor!r}")
        loss = logs.get("loss")
        try:
            loss = None if loss is None else float(loss)
        except (TypeError, ValueError):
            loss = None
        decision, row = self.driver.epoch_end(self.model, self._epoch, metric, loss=loss)
        self._epoch = None
        if row["rate"] is not None:  # quantization alone has no rate
            logs["compression_rate"] = row["rate"]
        logs["accuracy_budget"] = row["budget"]
        logs["criterion_met"] = float(row["passed"])
        logs["learning_rate_scale"] = self.driver.search.learning_rate_scale
        if decision.stop:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Ends the search (if `fit()` ran out first), restores the returned model and sets `self.result`."""
        if self.driver is None:
            return
        if self._skipped_train_function is not None:
            self.model.train_function = self._skipped_train_function
            self._skipped_train_function = None
        self.driver.stop(
            self.model,
            f"model.fit() ended after {self.driver.search.epochs_trained} epochs",
        )
        stripped = None
        if self.validation_data is not None:
            stripped = stripped_metric(
                self.compression_ctrl,
                self.model,
                self._evaluate,
                self.driver.search.epochs_trained,
            )
        self.result = self.driver.finish(self.model, stripped_metric=stripped)
        self.driver.flush_messages()

    def _evaluate(self, model, epoch):
        """The monitored metric of `model` on `validation_data`."""
        del epoch
        data = self.validation_data
        if isinstance(data, (tuple, list)):
            logs = model.evaluate(*data[:2], verbose=0, return_dict=True)
        else:
            logs = model.evaluate(data, verbose=0, return_dict=True)
        name = _metric_name(self.monitor)
        if name not in logs:
            raise KeyError(
                f"Expected the monitor {self.monitor!r} as {name!r} in the stripped model's "
                f"evaluate() logs. Received: {sorted(logs)}"
            )
        return logs[name]


def _no_training(iterator):
    """Stands in for the train step of a resumed run that has finished."""
    return {}
