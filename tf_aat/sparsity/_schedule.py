"""NNCF's sparsity schedules: the sparsity level at each epoch (or optimizer step).

What is implemented, after NNCF 2.x `nncf/common/sparsity/schedulers.py` and
`nncf/common/schedulers.py` (epochs are zero-based, `p = epoch / target_epoch`
clipped to [0, 1]):

- `polynomial` (magnitude's default): with `concave` (default true)
  `level = target - (target - init) * (1 - p) ** power`, otherwise
  `level = init + (target - init) * p ** power`; `power` defaults to 0.9.
  With `update_per_optimizer_step`, `p` counts optimizer steps too:
  `(epoch + step_in_epoch / steps_per_epoch) / target_epoch`; without
  `steps_per_epoch` the first epoch only counts its steps (the level stays),
  as in NNCF, and a later epoch with another step count is an error.
- `exponential` (RB's default): the density `1 - level` decays as
  `(1 - init) * ((1 - target) / (1 - init)) ** (epoch / target_epoch)`,
  capped at the target.
- `multistep`: `multistep_sparsity_levels[i]` where `i` is the number of
  `multistep_steps` at or below the epoch; the last level is the target (it
  overrides `sparsity_target`) and the first applies from the start.
- `adaptive`: starts at `sparsity_init`; at each epoch, when the model's
  measured sparsity is at least the current level minus `eps`, the epoch
  counts as a "bad" one; after `patience` of them the level rises by `step`
  (capped at the target). As in NNCF the count is not reset by an epoch that
  falls short. With magnitude sparsity the masks always give the level, so
  the level rises by `step` every `patience` epochs; with RB sparsity it
  rises once the learned masks have caught up.

From `sparsity_freeze_epoch` on the masks are frozen (NNCF: freeze, then set
the level, which a frozen magnitude controller ignores): magnitude masks are
no longer recomputed, RB masks become their binarised logits and the loss
stops. A level set by the user or the search still applies.
"""

import bisect

from tf_aat._controller import CompressionScheduler


class SparsityScheduler(CompressionScheduler):
    """Sets a sparsity controller's level each epoch (or step), as NNCF's schedulers do."""

    def __init__(self, controller, params):
        self._controller = controller
        self.schedule = params.schedule
        self.initial_level = params.sparsity_init
        self.target_level = params.target
        self.target_epoch = params.sparsity_target_epoch
        self.freeze_epoch = params.sparsity_freeze_epoch
        self.power = params.power
        self.concave = params.concave
        self.multistep_steps = list(params.multistep_steps)
        self.multistep_levels = list(params.multistep_sparsity_levels)
        self.adaptive_step = params.step
        self.adaptive_eps = params.eps
        self.patience = params.patience
        self.update_per_optimizer_step = params.update_per_optimizer_step
        self.steps_per_epoch = params.steps_per_epoch
        self.current_epoch = -1
        self.current_step = -1
        self.enabled = True
        self.num_bad_epochs = 0
        self._steps_in_current_epoch = 0
        self._should_skip = False
        if self.schedule == "multistep":
            self._level = self.multistep_levels[0]
        else:
            self._level = self.initial_level

    # -- the schedule's formulas -------------------------------------------
    def level_at(self, epoch, step_in_epoch=None):
        """The level the (non-adaptive) schedule gives at zero-based `epoch`."""
        init, target = self.initial_level, self.target_level
        if self.schedule == "multistep":
            return self.multistep_levels[bisect.bisect_right(self.multistep_steps, epoch)]
        if self.target_epoch == 0:
            return target
        if self.schedule == "exponential":
            initial_density, target_density = 1.0 - init, 1.0 - target
            density = initial_density * (target_density / initial_density) ** (
                epoch / self.target_epoch
            )
            return min(1.0 - max(density, target_density), target)
        if self.schedule == "polynomial":
            fractional = float(epoch)
            if step_in_epoch is not None and self.steps_per_epoch:
                fractional += step_in_epoch / self.steps_per_epoch
            progress = min(1.0, max(0.0, fractional / self.target_epoch))
            if self.concave:
                return target - (target - init) * (1.0 - progress) ** self.power
            return init + (target - init) * progress**self.power
        raise ValueError(f"The adaptive schedule has no closed form. Received: {self.schedule!r}")

    @property
    def current_level(self):
        """The level the schedule set last (the initial one before the first epoch)."""
        return self._level

    # -- NNCF's contract ---------------------------------------------------
    def epoch_step(self, next_epoch=None):
        """Moves to epoch `next_epoch` (default: the next one) and applies its level.

        Args:
            next_epoch: the zero-based epoch about to start, or None for the
                one after the current.
        """
        if self.update_per_optimizer_step:
            self._check_steps_per_epoch()
            if self._should_skip:
                return
            self._steps_in_current_epoch = 0
        self.current_epoch = self.current_epoch + 1 if next_epoch is None else int(next_epoch)
        if self.update_per_optimizer_step:
            return  # the level follows the optimizer steps
        if self.schedule == "adaptive":
            measured = self._controller.measured_level()
            if measured >= self._level - self.adaptive_eps:
                self.num_bad_epochs += 1
            if self.num_bad_epochs >= self.patience:
                self.num_bad_epochs = 0
                self._level = min(self._level + self.adaptive_step, self.target_level)
        else:
            self._level = self.level_at(self.current_epoch)
        self._apply()

    def step(self, next_step=None):
        """Counts an optimizer step; with `update_per_optimizer_step` the level follows it.

        Args:
            next_step: the step about to run, or None for the next one.
        """
        self._steps_in_current_epoch += 1
        if self._should_skip:
            return
        self.current_step = self.current_step + 1 if next_step is None else int(next_step)
        if self.update_per_optimizer_step and self.current_epoch >= 0:
            self._level = self.level_at(
                self.current_epoch, max(self._steps_in_current_epoch - 1, 0)
            )
            self._apply()

    def _check_steps_per_epoch(self):
        self._should_skip = False
        counted = self._steps_in_current_epoch
        if self.steps_per_epoch is None and counted > 0:
            self.steps_per_epoch = counted
        elif self.steps_per_epoch is not None and counted > 0 and counted != self.steps_per_epoch:
            raise ValueError(
                "The sparsity schedule updates per optimizer step and expected "
                f"{self.steps_per_epoch} steps per epoch (`steps_per_epoch`, or the first "
                f"epoch's count). Received: {counted} steps in the last epoch"
            )
        if self.steps_per_epoch is None:
            # NNCF: the first epoch only measures the number of steps.
            self._should_skip = True

    def _apply(self):
        if not self.enabled:
            return
        if self.current_epoch >= self.freeze_epoch:
            self._controller.freeze()
        self._controller._set_level(self._level, source="scheduler")

    def get_state(self):
        """The schedule's counters and level, as plain JSON."""
        return {
            "current_epoch": self.current_epoch,
            "current_step": self.current_step,
            "enabled": self.enabled,
            "level": self._level,
            "num_bad_epochs": self.num_bad_epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "steps_in_current_epoch": self._steps_in_current_epoch,
        }

    def load_state(self, state):
        """Restores what `get_state` returned (the level is not applied again: the masks come back with the weights)."""
        self.current_epoch = int(state["current_epoch"])
        self.current_step = int(state["current_step"])
        self.enabled = bool(state.get("enabled", True))
        self._level = float(state.get("level", self._level))
        self.num_bad_epochs = int(state.get("num_bad_epochs", 0))
        self.steps_per_epoch = state.get("steps_per_epoch", self.steps_per_epoch)
        self._steps_in_current_epoch = int(state.get("steps_in_current_epoch", 0))
