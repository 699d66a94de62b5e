"""Drives a controller's compression schedule from `model.fit()`."""

import keras


class CompressionCallback(keras.callbacks.Callback):
    """Steps `compression_ctrl.scheduler` inside `model.fit()` (no search).

    Use it to train with a fixed compression schedule, e.g. prune to the
    config's `pruning_target` with its exponential schedule and fine-tune.
    At the beginning of every epoch it calls `scheduler.epoch_step(epoch)`
    (so the rate of epoch `e` is the schedule's level at `e`, also when
    `fit()` is given `initial_epoch`), and it adds `compression_rate` to the
    epoch logs (for controllers that have one: quantization alone has no
    rate). No schedule here is per batch, so it adds nothing to the training
    step.

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
        self.compression_ctrl = compression_ctrl

    def on_epoch_begin(self, epoch, logs=None):
        self.compression_ctrl.scheduler.epoch_step(epoch)

    def on_epoch_end(self, epoch, logs=None):
        # A quantization-only controller has no rate to log.
        rate = getattr(self.compression_ctrl, "compression_rate", None)
        if logs is not None and rate is not None:
            logs["compression_rate"] = float(rate)
