"""The search's decisions and checkpoint keys (pure Python)."""

import dataclasses
import math
import re

PHASE_INITIAL = "initial"
PHASE_SEARCH = "search"
PHASE_EARLY_EXIT = "early_exit"
PHASE_FINISHED = "finished"

# The model as the search found it before its first epoch: what a fault
# restores when no epoch has produced a checkpoint yet.
START_KEY = "start"
# The one checkpoint key of a controller without a rate (quantization alone).
NO_RATE_KEY = "no_rate"


def checkpoint_key(rate):
    """Returns a file-name-safe checkpoint key that encodes `rate` exactly.

    `float(key[5:].replace("p", "."))` gives back the same float: `repr`
    is the shortest string that round-trips, so two different rates never
    share a key. A controller without a rate (None) has the one key
    `"no_rate"`.
    """
    if rate is None:
        return NO_RATE_KEY
    text = repr(float(rate)).replace(".", "p").replace("-", "m").replace("+", "")
    return "rate_" + re.sub(r"[^0-9A-Za-z_]", "_", text)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the driver does after an epoch, in this order.

    1. `save_checkpoint`: save the current model and controller under this
       key (this epoch is the best one so far at its rate).
    2. `disable_scheduler`: stop the compression schedule from changing the
       rate (the initial phase is over).
    3. `restore_checkpoint`: load the model and controller from this key.
    4. `compression_rate`: set the controller's rate to this value.
    5. `learning_rate_scale`: set the learning rate to the user's learning
       rate times this (cumulative) factor.
    6. `stop`: end training; the restored checkpoint is the result.

    `reset_optimizer`: the epoch was not finite (NaN or inf loss, metric or
    weights): the optimizer's slots get their initial values after the
    restore, so no NaN moment carries over into later epochs.
    """

    save_checkpoint: str | None = None
    disable_scheduler: bool = False
    restore_checkpoint: str | None = None
    compression_rate: float | None = None
    learning_rate_scale: float | None = None
    stop: bool = False
    phase: str = PHASE_INITIAL
    reset_optimizer: bool = False


def json_number(value):
    if value is None or math.isfinite(value):
        return value
    return None


def from_json_number(value):
    return math.nan if value is None else value


def json_row(row):
    return {**row, "metric": json_number(row["metric"])}
