"""Scaling the learning rate of a Keras optimizer, schedules included."""

import logging

import keras


def _numpy(value):
    """`value` as NumPy; variables via `.numpy()` (no NumPy 2 copy warning)."""
    return value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)


logger = logging.getLogger("tf_aat.accuracy_aware")


@keras.saving.register_keras_serializable(package="tf_aat")
class ScaledLearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate schedule multiplied by a factor that can change.

    The factor is a non-trainable `keras.Variable`, so assigning it takes
    effect in an already traced train step.

    Args:
        schedule: the `LearningRateSchedule` to scale.
        factor: the initial factor.

    Example:

    ```python
    schedule = ScaledLearningRateSchedule(
        keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.9)
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    schedule.factor.assign(0.5)  # halves every later learning rate
    ```
    """

    def __init__(self, schedule, factor=1.0):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "`schedule` must be a keras.optimizers.schedules.LearningRateSchedule. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.factor = keras.Variable(
            float(factor), dtype="float32", trainable=False, name="learning_rate_factor"
        )

    def __call__(self, step):
        value = keras.ops.convert_to_tensor(self.schedule(step))
        return value * keras.ops.cast(self.factor, value.dtype)

    def get_config(self):
        """The wrapped schedule (serialized) and the current factor, for saving."""
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "factor": float(_numpy(self.factor)),
        }


class LearningRateScaler:
    """Applies the search's cumulative learning-rate scale to an optimizer.

    `attach()` must run before the train step is traced: it wraps a
    `LearningRateSchedule` in a `ScaledLearningRateSchedule`. `apply(scale)`
    then sets the learning rate to the user's one times `scale`:

    - with `update_learning_rate_fn`, it calls it with the relative factor
      (new scale / previous scale) and does nothing else;
    - a schedule gets its factor variable assigned;
    - a float or variable learning rate is multiplied by the relative
      factor, so changes made by other callbacks are kept.
    """

    def __init__(self, optimizer=None, update_learning_rate_fn=None):
        self.optimizer = optimizer
        self.update_learning_rate_fn = update_learning_rate_fn
        self.scale = 1.0
        self._schedule = None
        self._warned = False

    def attach(self):
        """Wraps the optimizer's schedule; returns True if it replaced it."""
        if self.update_learning_rate_fn is not None or self.optimizer is None:
            return False
        current = getattr(self.optimizer, "_learning_rate", None)
        if isinstance(current, ScaledLearningRateSchedule):
            self._schedule = current
            current.factor.assign(self.scale)
            return False
        if isinstance(current, keras.optimizers.schedules.LearningRateSchedule):
            self._schedule = ScaledLearningRateSchedule(current, self.scale)
            self.optimizer.learning_rate = self._schedule
            return True
        return False

    def apply(self, scale):
        """Sets the learning rate to the user's learning rate times `scale`."""
        scale = float(scale)
        factor = scale / self.scale
        self.scale = scale
        if factor == 1.0:
            return
        if self.update_learning_rate_fn is not None:
            self.update_learning_rate_fn(factor)
            return
        if self.optimizer is None:
            if not self._warned:
                logger.warning(
                    "The accuracy-aware search scaled the learning rate by %g but "
                    "there is no optimizer to apply it to: return one from "
                    "`configure_optimizers_fn` or pass `update_learning_rate_fn`.",
                    factor,
                )
                self._warned = True
            return
        if self._schedule is not None:
            self._schedule.factor.assign(scale)
            return
        current = float(_numpy(self.optimizer.learning_rate))
        self.optimizer.learning_rate = current * factor

    def current_learning_rate(self):
        if self.optimizer is None:
            return None
        return float(_numpy(self.optimizer.learning_rate))
