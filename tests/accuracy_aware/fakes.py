"""A fake compression controller whose rate is mirrored in a model weight.

The model weight plays the role of the masks: setting the rate writes it,
`load_state` does not (masks come back with the weights), so a test can
check that weights and `ctrl.compression_rate` agree after a restore.
"""

import keras


def _numpy(value):
    """`value` as NumPy; variables via `.numpy()` (no NumPy 2 copy warning)."""
    return value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)


class RateLayer(keras.layers.Layer):
    """Identity layer holding a non-trainable copy of the rate ("mask")."""

    def build(self, input_shape):
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")

    def call(self, inputs):
        return inputs


def make_model():
    rate_layer = RateLayer()
    model = keras.Sequential(
        [keras.Input((1,)), rate_layer, keras.layers.Dense(1, kernel_initializer="zeros")]
    )
    return model, rate_layer


class FakeScheduler:
    def __init__(self, ctrl, levels):
        self.ctrl = ctrl
        self.levels = list(levels)
        self.target_level = self.levels[-1]
        self.calls = []

    @property
    def current_level(self):
        return self.ctrl.compression_rate

    def epoch_step(self, epoch=None):
        self.calls.append(epoch)
        if not self.ctrl.scheduler_disabled:
            self.ctrl.compression_rate = self.levels[min(epoch, len(self.levels) - 1)]

    def step(self):
        pass


class FakeController:
    def __init__(self, rate_layer, levels, maximal_compression_rate=0.9):
        self.rate_layer = rate_layer
        self.maximal_compression_rate = maximal_compression_rate
        self.minimal_compression_rate = 0.0
        self.scheduler_disabled = False
        self._rate = 0.0
        self.scheduler = FakeScheduler(self, levels)

    @property
    def compression_rate(self):
        return self._rate

    @compression_rate.setter
    def compression_rate(self, value):
        self._rate = float(value)
        self.rate_layer.rate.assign(self._rate)

    def mask_rate(self):
        return float(_numpy(self.rate_layer.rate))

    def disable_scheduler(self):
        self.scheduler_disabled = True

    def get_state(self):
        return {"compression_rate": self._rate, "scheduler_disabled": self.scheduler_disabled}

    def load_state(self, state):
        self._rate = state["compression_rate"]
        self.scheduler_disabled = state["scheduler_disabled"]
