"""Drives a controller's compression schedule from `model.fit()`."""

import keras

from tf_aat import _distribute
from tf_aat._controller import has_rate


class CompressionCallback(keras.callbacks.Callback):
    """Steps `compression_ctrl.scheduler` inside `model.fit()` (no search).

    Use it to train with a fixed compression schedule, e.g. prune to the
    config's `pruning_target` with its exponential schedule and fine-tune.
    At the beginning of every epoch it calls `scheduler.epoch_step(epoch)`
    (so the rate of epoch `e` is the schedule's level at `e`, also when
    `fit()` is given `initial_epoch`), and it adds `compression_rate` to the
    epoch logs (for controllers that have one: quantization alone has no
    rate). Only a schedule that moves with every optimizer step (sparsity's
    `update_per_optimizer_step`) is also stepped before each batch; otherwise
    the callback adds nothing to the training step.

    Do not combine it with `AccuracyAwareCallback`, which steps the scheduler
    itself during its initial phase.

    Example:

    ```python
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    compressed.fit(x, y, epochs=10, callbacks=[tf_aat.CompressionCallback(ctrl)])
    stripped = ctrl.strip_model(compressed)
    ```
    """

    def __init__(self, compression_ctrl):
        super().__init__()
        if not hasattr(compression_ctrl, "scheduler"):
            raise TypeError(
                "CompressionCallback expects the compression controller returned by "
                "`tf_aat.create_compressed_model` (it needs its `scheduler`). Received: "
                f"{type(compression_ctrl).__name__}"
            )
        _distribute.check_created_in_scope(compression_ctrl, "CompressionCallback")
        _distribute.check_fit_supported(compression_ctrl, "CompressionCallback")
        self.compression_ctrl = compression_ctrl
        # A schedule that moves with every optimizer step (sparsity's
        # `update_per_optimizer_step`) is stepped before each batch; the others
        # add nothing to the training step.
        if _steps_per_batch(compression_ctrl.scheduler):
            self.on_train_batch_begin = self._step

    def _step(self, batch, logs=None):
        self.compression_ctrl.scheduler.step()

    def on_train_begin(self, logs=None):
        """Refuses a model whose variables live outside the `tf.distribute` strategy it trains in."""
        _distribute.check_training_strategy(self.model, "CompressionCallback")

    def on_epoch_begin(self, epoch, logs=None):
        """Calls `scheduler.epoch_step(epoch)`, so epoch `epoch` trains at the schedule's level for it."""
        self.compression_ctrl.scheduler.epoch_step(epoch)

    def on_epoch_end(self, epoch, logs=None):
        # A quantization-only controller has no rate to log.
        """Adds `compression_rate` to the epoch logs (controllers with a rate only)."""
        if logs is not None and has_rate(self.compression_ctrl):
            logs["compression_rate"] = float(self.compression_ctrl.compression_rate)


def _steps_per_batch(scheduler):
    children = getattr(scheduler, "schedulers", None)
    if children is not None:
        return any(_steps_per_batch(child) for child in children)
    return bool(getattr(scheduler, "update_per_optimizer_step", False))
