"""NNCF's pruning schedules: the pruning level at each epoch.

During the first `num_init_steps` epochs nothing is pruned. Then the level
goes from `pruning_init` to the target over `pruning_steps` epochs and stays
there:

- `baseline`: the target at once.
- `exponential`: the kept fraction (1 - level) decays exponentially, reaching
  the target at epoch `pruning_steps - 1`.
- `exponential_with_bias`: level = a * exp(-k * t) + b, with a + b = init,
  the target at `t = pruning_steps - 1` and 3/4 of the target at 1/8 of that
  epoch (Zhuang et al., arXiv:1808.07471, as in NNCF).

As in NNCF, the masks are frozen (no more filter re-selection while the
schedule runs) from the freeze epoch on: `num_init_steps` for `baseline`
(its masks are chosen once, when pruning starts), `num_init_steps +
pruning_steps` for the others. `pruning_steps` may be 0 for `baseline`.
A `pruning_init` above the target gives the target from the first pruning
epoch: NNCF's schedules cap the level at the target.
"""

import math


def _solve_bias_exponential(steps, initial, target, factor=0.125):
    """Returns (a, b, k) of a * exp(-k t) + b for `exponential_with_bias`."""
    if steps <= 0 or target <= initial:
        return 0.0, target, 0.0
    c = (0.75 * target - initial) / (target - initial)

    def f(y):  # y = exp(-k * steps); y = 1 is the trivial root.
        return y**factor - c * y + c - 1.0

    low, high = 1e-12, 1.0 - 1e-9
    if f(low) * f(high) > 0:
        return 0.0, target, 0.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if f(low) * f(mid) <= 0:
            high = mid
        else:
            low = mid
    y = 0.5 * (low + high)
    k = -math.log(y) / steps
    a = (target - initial) / (y - 1.0)
    return a, initial - a, k


class PruningScheduler:
    """Sets the controller's pruning level each epoch, as NNCF's schedulers do.

    `epoch_step(next_epoch=None)` is called at the start of every epoch;
    `step()` at every training step (the level only changes per epoch).
    """

    def __init__(self, controller, params):
        self._controller = controller
        self.schedule = params.schedule
        self.initial_level = params.pruning_init
        self.target_level = params.target
        self.num_init_steps = params.num_init_steps
        self.pruning_steps = params.pruning_steps
        self.current_epoch = -1
        self.current_step = -1
        self.enabled = True
        if self.schedule == "baseline":
            self.freeze_epoch = self.num_init_steps
        else:
            self.freeze_epoch = self.num_init_steps + self.pruning_steps
        if self.schedule == "exponential_with_bias":
            self._abk = _solve_bias_exponential(
                self.pruning_steps - 1, self.initial_level, self.target_level
            )

    def level_at(self, epoch):
        """The pruning level the schedule gives for zero-based `epoch`."""
        if epoch < self.num_init_steps:
            return 0.0
        t = epoch - self.num_init_steps
        if self.schedule == "baseline":
            return self.target_level
        last = self.pruning_steps - 1
        if last <= 0 or t >= last:
            return self.target_level
        if t == 0 or self.initial_level >= self.target_level:
            return min(self.initial_level, self.target_level)
        if self.schedule == "exponential":
            initial_density = 1.0 - self.initial_level
            target_density = 1.0 - self.target_level
            density = initial_density * (target_density / initial_density) ** (t / last)
            return min(1.0 - density, self.target_level)
        a, b, k = self._abk
        return min(a * math.exp(-k * t) + b, self.target_level)

    @property
    def current_level(self):
        return self.level_at(max(self.current_epoch, 0))

    def epoch_step(self, next_epoch=None):
        self.current_epoch = self.current_epoch + 1 if next_epoch is None else int(next_epoch)
        if self.enabled:
            self._controller._set_rate(self.current_level, source="scheduler")
            if self.current_epoch >= self.freeze_epoch:
                # The masks just set stay until the search (or the user) sets a rate.
                self._controller.frozen = True

    def step(self, next_step=None):
        self.current_step = self.current_step + 1 if next_step is None else int(next_step)

    def get_state(self):
        return {
            "current_epoch": self.current_epoch,
            "current_step": self.current_step,
            "enabled": self.enabled,
        }

    def load_state(self, state):
        self.current_epoch = int(state["current_epoch"])
        self.current_step = int(state["current_step"])
        self.enabled = bool(state.get("enabled", True))
