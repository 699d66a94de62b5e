"""The standalone accuracy-aware training loop (NNCF's runner contract)."""

import collections.abc
import logging
import numbers

from tf_aat import _distribute
from tf_aat._errors import ConfigError
from tf_aat.accuracy_aware._driver import SearchDriver, check_controller, metric_value
from tf_aat.accuracy_aware._learning_rate import LearningRateScaler
from tf_aat.accuracy_aware._params import (
    AccuracyAwareParams,
    find_accuracy_aware_section,
    parse_accuracy_aware_training,
)

logger = logging.getLogger("tf_aat.accuracy_aware")


def resolve_accuracy_aware_params(config):
    """Returns the `AccuracyAwareParams` of a config in any accepted form.

    `config` may be an `AccuracyAwareParams`, an object with an
    `accuracy_aware_training` attribute or method (parsed params, a section
    dict or None), a whole config dict, or an object with `to_dict()`.
    """
    if isinstance(config, AccuracyAwareParams):
        return config
    params = None
    if isinstance(config, collections.abc.Mapping):
        params = find_accuracy_aware_section(dict(config))
    elif hasattr(config, "accuracy_aware_training"):
        params = config.accuracy_aware_training
        if callable(params) and not isinstance(params, AccuracyAwareParams):
            params = params()
        if isinstance(params, collections.abc.Mapping):
            params = parse_accuracy_aware_training(dict(params), "accuracy_aware_training")
    elif callable(getattr(config, "to_dict", None)):
        params = find_accuracy_aware_section(config.to_dict())
    else:
        raise TypeError(
            "`config` must be a CompressionConfig, a config dict or an "
            f"AccuracyAwareParams. Received: config={config!r}"
        )
    if params is None:
        raise ConfigError(
            "accuracy_aware_training",
            "an accuracy_aware_training section, top-level (NNCF's layout) or "
            "inside a compression algorithm section",
            None,
            hint="Add one to the config to use accuracy-aware training.",
        )
    return params


class AccuracyAwareTrainingLoop:
    """Trains with user functions while the accuracy-aware search runs.

    Created by `create_accuracy_aware_training_loop`. After `run()`,
    `loop.result` holds the `AccuracyAwareResult`.
    """

    def __init__(self, params, compression_ctrl, uncompressed_model_accuracy, verbose=1):
        check_controller(compression_ctrl, params)
        self.params = params
        self.compression_ctrl = compression_ctrl
        self.uncompressed_model_accuracy = float(uncompressed_model_accuracy)
        self.verbose = verbose
        self.result = None
        self.driver = None

    @property
    def search(self):
        """The running `AccuracyAwareSearch` (None before `run()`)."""
        return None if self.driver is None else self.driver.search

    def run(
        self,
        model,
        train_epoch_fn,
        validate_fn,
        configure_optimizers_fn=None,
        dump_checkpoint_fn=None,
        load_checkpoint_fn=None,
        early_stopping_fn=None,
        tensorboard_writer=None,
        log_dir=None,
        update_learning_rate_fn=None,
        resume=False,
        measure_stripped=True,
    ):
        """Runs the search and returns `model` in its final state.

        Args:
            model: the compressed Keras model.
            train_epoch_fn: `train_epoch_fn(compression_ctrl, model, epoch,
                optimizer, lr_scheduler)` trains one epoch; if it returns a
                number, that is the epoch's loss (a NaN or inf loss makes
                the epoch a fault, as do non-finite weights).
            validate_fn: `validate_fn(model, epoch) -> float`, higher is
                better.
            configure_optimizers_fn: `() -> (optimizer, lr_scheduler)`; the
                optimizer's learning rate is what the search scales.
            dump_checkpoint_fn: `(model, compression_ctrl, loop, log_dir) ->
                path`, called (with `log_dir` set) whenever the search saves
                a checkpoint; the loop always keeps its own checkpoints too.
            load_checkpoint_fn: `(path, model)`, called after the loop
                restores a checkpoint that `dump_checkpoint_fn` also saved.
            early_stopping_fn: `(metric) -> bool`; True ends the current
                phase (early exit: the run) after this epoch.
            tensorboard_writer: a `tf.summary` writer for the search's
                scalars, the algorithms' statistics, the search state and
                the result's text (else one under `log_dir` is created);
                see `AccuracyAwareCallback` for the tags.
            log_dir: where checkpoints, the resume state, the summary and
                the plot go; None keeps checkpoints in memory.
            update_learning_rate_fn: `(factor)` multiplies the learning rate
                by `factor`; replaces the loop's own optimizer update.
            resume: continue a run killed with the same `log_dir`.
            measure_stripped: re-measure the returned model's metric with
                `validate_fn` on `compression_ctrl.strip_model(model)` (compiled
                like `model`), the model that is deployed: it goes into
                `loop.result.stripped_metric`, beside the searched metric.

        Returns:
            `model`, with weights, masks and `compression_ctrl.compression_rate`
            of the best checkpoint of the highest rate that met the criterion
            (see `loop.result.criterion_met`).
        """
        if resume and log_dir is None:
            raise ValueError("`resume=True` needs the `log_dir` of the run. Received: log_dir=None")
        _distribute.check_training_strategy(model, "AccuracyAwareTrainingLoop.run")
        optimizer, lr_scheduler = None, None
        if configure_optimizers_fn is not None:
            optimizer, lr_scheduler = configure_optimizers_fn()
        scaler = LearningRateScaler(optimizer, update_learning_rate_fn)
        scaler.attach()
        self.driver = SearchDriver(
            self.compression_ctrl,
            self.params,
            self.uncompressed_model_accuracy,
            log_dir=log_dir,
            resume=resume,
            verbose=self.verbose,
            tensorboard_writer=tensorboard_writer,
            dump_checkpoint_fn=dump_checkpoint_fn,
            load_checkpoint_fn=load_checkpoint_fn,
            optimizer=optimizer,
        )
        self.driver.begin(model, scaler, owner=self)
        search = self.driver.search
        while not search.finished:
            epoch = search.epochs_trained
            self.driver.epoch_begin(epoch)
            loss = train_epoch_fn(
                self.compression_ctrl,
                model,
                epoch=epoch,
                optimizer=optimizer,
                lr_scheduler=lr_scheduler,
            )
            metric = metric_value(validate_fn(model, epoch=epoch), "validate_fn")
            end_phase = bool(early_stopping_fn(metric)) if early_stopping_fn else False
            # A number returned by train_epoch_fn is taken as the epoch's loss.
            if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
                loss = None
            self.driver.epoch_end(model, epoch, metric, end_phase=end_phase, loss=loss)
        stripped = None
        if measure_stripped:
            stripped = stripped_metric(
                self.compression_ctrl, model, validate_fn, max(search.epochs_trained - 1, 0)
            )
        self.result = self.driver.finish(model, stripped_metric=stripped)
        return model


def stripped_metric(ctrl, model, validate_fn, epoch):
    """`validate_fn` on `ctrl.strip_model(model)`, or None (with a warning) where the
    controller has no strip or the stripped model cannot be validated."""
    strip = getattr(ctrl, "strip_model", None)
    if strip is None:
        return None
    try:
        stripped = strip(model)
        if getattr(model, "compiled", False):
            stripped.compile_from_config(model.get_compile_config())
        return metric_value(validate_fn(stripped, epoch=epoch), "validate_fn")
    except Exception as error:  # noqa: BLE001 - the search's own result stands
        logger.warning(
            "The stripped model's metric could not be measured (%s: %s); "
            "loop.result.stripped_metric is None. Measure it with validate_fn on "
            "compression_ctrl.strip_model(model), or pass measure_stripped=False.",
            type(error).__name__,
            error,
        )
        return None


def create_accuracy_aware_training_loop(
    config, compression_ctrl, uncompressed_model_accuracy, verbose=1, **kwargs
):
    """Creates the accuracy-aware training loop (NNCF's entry point).

    Args:
        config: a `CompressionConfig` (its `accuracy_aware_training`), a
            config dict holding an `accuracy_aware_training` section, or an
            `AccuracyAwareParams`.
        compression_ctrl: the compression controller whose
            `compression_rate` the search varies (`early_exit` also runs
            with a controller without a rate, e.g. quantization alone).
        uncompressed_model_accuracy: the uncompressed model's metric, in
            the same units as `validate_fn`'s.
        verbose: show one line per epoch, what a resume restored and the
            final summary (stdout, or absl logging when Keras's interactive
            logging is off); 0 sends them to the `tf_aat.accuracy_aware`
            logger only.

    Example:

    ```python
    loop = tf_aat.create_accuracy_aware_training_loop(config, ctrl, 0.97)
    model = loop.run(model, train_epoch_fn, validate_fn,
                     configure_optimizers_fn=lambda: (optimizer, None),
                     log_dir="aa_logs")
    print(loop.result)
    ```
    """
    # NNCF's `dump_checkpoints` flag: checkpoints are always kept here.
    kwargs.pop("dump_checkpoints", None)
    if kwargs:
        raise TypeError(
            "Unexpected arguments of create_accuracy_aware_training_loop. "
            f"Received: {sorted(kwargs)}"
        )
    params = resolve_accuracy_aware_params(config)
    return AccuracyAwareTrainingLoop(params, compression_ctrl, uncompressed_model_accuracy, verbose)
