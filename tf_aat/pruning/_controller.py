"""`FilterPruningController`: masks, rate, schedule and statistics of filter pruning."""

import logging
import math

import numpy as np

from tf_aat import _layer_rules as rules
from tf_aat._controller import RatedCompressionController
from tf_aat._layer_rules import unwrap
from tf_aat.pruning import _masks
from tf_aat.pruning._importance import IMPORTANCE_FUNCTIONS
from tf_aat.pruning._input_mask import InputChannelMask
from tf_aat.pruning._schedule import PruningScheduler
from tf_aat.pruning._statistics import PruningStatistics

logger = logging.getLogger("tf_aat")


class FilterPruningController(RatedCompressionController):
    """Controls filter pruning of a compressed model.

    `compression_rate` is the fraction of filters pruned in every prunable
    group or, when `pruning_flops_target` is configured, the fraction of FLOPs
    removed. Setting it recomputes the masks at once from the current weights.
    """

    name = "filter_pruning"

    def __init__(self, model, analysis, params):
        self.model = model
        self.params = params
        self._analysis = analysis
        self.prune_flops = params.pruning_flops_target is not None
        self.groups = [g for g in analysis.groups if g.prunable]
        self._importance = IMPORTANCE_FUNCTIONS[params.importance]
        self._passthrough = [
            use
            for use in analysis.uses
            if use.kind == "passthrough" and getattr(use.layer, "mask", None) is not None
        ]
        # Statistics zeroed on pruned channels (a BatchNormalization without gamma), and
        # consumers' weights that read pruned channels (kept out of quantizer ranges).
        self._zeroed = []
        self._input_masks = []
        for use in analysis.uses:
            layer = unwrap(use.layer)
            if use.kind == "passthrough":
                weights = rules.rule_for(layer).weights("zeroed_weights", layer)
                if weights:
                    self._zeroed.append((use, layer, weights))
            elif use.kind == "consumer":
                masks = [
                    t
                    for ts in getattr(use.layer, "weight_transforms", {}).values()
                    for t in ts
                    if isinstance(t, InputChannelMask)
                ]
                if masks:
                    self._input_masks.append((use, masks))
        self._rate = 0.0
        self._level = 0.0
        self.frozen = False
        self.scheduler = PruningScheduler(self, params)
        self._maximal_rate = None
        self._reachable = None  # the most the last rate set could reach, when below it
        self._warned_unreachable = set()
        if not self.groups:
            logger.warning(
                "Filter pruning found no prunable convolution groups in model %r; "
                "see controller.statistics() for the reasons.",
                model.name,
            )

    # -- rate -------------------------------------------------------------
    @property
    def compression_rate(self):
        """The fraction of filters pruned in each prunable group (or of FLOPs removed, with `pruning_flops_target`).

        Setting it recomputes every mask from the current weights at once (a
        number in [0, 1)); a rate above what pruning can reach prunes the most
        it can, warns, and `statistics()` reports the `achieved_compression_rate`.

        Example:

        ```python
        ctrl.compression_rate = 0.5   # half of the filters of each group masked
        ```
        """
        return self._rate

    @compression_rate.setter
    def compression_rate(self, rate):
        self._set_rate(rate, source="user")

    @property
    def pruning_level(self):
        """The fraction of filters pruned in each prunable group."""
        return self._level

    @property
    def achieved_compression_rate(self):
        """What the masks achieve, in the rate's meaning: the FLOPs reduction in FLOPs
        mode, else the pruning level applied (0 when nothing is prunable). Below
        `compression_rate` when that is more than pruning can reach."""
        if not self.groups:
            return 0.0
        if self.prune_flops:
            return self._flops_reduction(self.current_keep())
        return self._level

    @property
    def maximal_compression_rate(self):
        """`maximal_pruning_level`, or in FLOPs mode the FLOPs reduction that level reaches on this model."""
        if not self.prune_flops:
            return self.params.maximal_pruning_level
        if self._maximal_rate is None:
            scores = self._group_scores()
            keep = self._keep_for_level(self.params.maximal_pruning_level, scores)
            self._maximal_rate = self._flops_reduction(keep)
        return self._maximal_rate

    @property
    def minimal_compression_rate(self):
        """0.0: nothing pruned."""
        return 0.0

    def _set_rate(self, rate, source):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)):
            raise ValueError(
                f"Expected the compression rate to be a number in [0, 1). Received: rate={rate!r}"
            )
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(
                "Expected the compression rate to be in [0, 1): at least one filter of "
                f"each layer must stay. Received: rate={rate}"
            )
        if source == "scheduler" and self.frozen and rate == self._rate:
            return
        scores = self._group_scores()
        if not self.groups:
            level, keep, reachable = 0.0, {}, 0.0
        elif self.prune_flops:
            level, keep, reachable = self._level_for_flops(rate, scores)
        else:
            reachable = self.params.maximal_pruning_level
            level = min(rate, reachable)
            keep = self._keep_for_level(level, scores)
        self._assign(keep)
        self._rate = rate
        self._level = level
        self._reachable = reachable if rate > reachable + 1e-9 else None
        if self._reachable is not None:
            self._warn_unreachable(rate, reachable, source)
        if source == "scheduler" and self.scheduler.current_epoch >= (
            self.params.num_init_steps + self.params.pruning_steps
        ):
            self.frozen = True

    def _group_scores(self):
        scores = []
        for group in self.groups:
            total = None
            for unit in group.units:
                layer = unwrap(unit.layer)
                rule = rules.rule_for(layer)
                name = rule.score_weight_of(layer)
                axis = rule.weights("filter_weights", layer)[name]
                kernel = np.moveaxis(np.asarray(getattr(layer, name).numpy()), axis, -1)
                value = self._importance(kernel)
                total = value if total is None else total + value
            scores.append(total)
        return scores

    def _warn_unreachable(self, rate, reachable, source):
        # Once per asked value; the schedule's growing rates warn once in all.
        key = "schedule" if source == "scheduler" else round(rate, 6)
        if key in self._warned_unreachable:
            return
        self._warned_unreachable.add(key)
        max_level = self.params.maximal_pruning_level
        if not self.groups:
            logger.warning(
                "Filter pruning was asked for a compression rate of %.4f, but model %r has "
                "no prunable convolution groups: nothing is pruned (0%% removed). See "
                "controller.statistics() for the reasons, or leave filter pruning out. "
                "Received: compression_rate=%r",
                rate,
                self.model.name,
                rate,
            )
            return
        if self.prune_flops:
            asked = f"a FLOPs reduction of {rate:.4f}"
            reached = (
                f"{reachable:.4f} (the FLOPs reduction at maximal_pruning_level {max_level:g})"
            )
        else:
            asked = f"a pruning level of {rate:.4f}"
            reached = f"{reachable:g} (maximal_pruning_level)"
        logger.warning(
            "Filter pruning was asked for %s, more than it can reach: %s; pruning that much "
            "instead, and statistics() reports it as achieved_compression_rate. Ask for at "
            "most %.4f, or raise maximal_pruning_level (below 1.0). Received: "
            "compression_rate=%r",
            asked,
            reached,
            reachable,
            rate,
        )

    def _keep_for_level(self, level, scores):
        """Unit keep flags when `level` of each group's filters is pruned."""
        max_level = self.params.maximal_pruning_level
        keep = {}
        if self.params.all_weights and self.groups:
            # Rank all filters together, each group's scores scaled to its mean.
            normalized = [s / max(float(np.mean(s)), 1e-12) for s in scores]
            flat = np.concatenate(normalized)
            owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(scores)])
            budget = int(math.floor(level * len(flat)))
            limits = [min(int(math.floor(max_level * len(s))), len(s) - 1) for s in scores]
            pruned = [np.zeros(len(s), bool) for s in scores]
            counts = [0] * len(scores)
            offsets = np.cumsum([0] + [len(s) for s in scores])
            for index in np.argsort(flat, kind="stable"):
                if budget <= 0:
                    break
                g = int(owner[index])
                if counts[g] < limits[g]:
                    pruned[g][index - offsets[g]] = True
                    counts[g] += 1
                    budget -= 1
            for group, mask in zip(self.groups, pruned):
                for unit in group.units:
                    keep[id(unit.layer)] = ~mask
            return keep
        for group, score in zip(self.groups, scores):
            n = len(score)
            count = min(int(math.floor(min(level, max_level) * n + 1e-9)), n - 1)
            flags = np.ones(n, bool)
            if count > 0:
                flags[np.argsort(score, kind="stable")[:count]] = False
            for unit in group.units:
                keep[id(unit.layer)] = flags
        return keep

    def _flops_reduction(self, keep):
        rows = _masks.model_cost(self._analysis, keep)
        full = sum(r["full_flops"] for r in rows)
        return 1.0 - sum(r["flops"] for r in rows) / full if full else 0.0

    def _level_for_flops(self, target, scores):
        """The smallest pruning level whose FLOPs reduction reaches `target`, its keep
        flags and the largest reduction reachable (at the maximal level)."""
        max_level = self.params.maximal_pruning_level
        best = (max_level, self._keep_for_level(max_level, scores))
        reachable = self._flops_reduction(best[1])
        if target <= 0.0:
            return 0.0, self._keep_for_level(0.0, scores), reachable
        if reachable < target:
            return (*best, reachable)
        low, high = 0.0, max_level
        for _ in range(30):
            mid = 0.5 * (low + high)
            keep = self._keep_for_level(mid, scores)
            if self._flops_reduction(keep) >= target:
                high, best = mid, (mid, keep)
            else:
                low = mid
        return (*best, reachable)

    def _assign(self, keep):
        for group in self.groups:
            for unit in group.units:
                unit.layer.mask.assign(keep[id(unit.layer)].astype("float32"))
        for use in self._passthrough:
            vector = _masks.keep_vector(use.channels, keep)
            use.layer.mask.assign(vector.astype("float32"))
        for use, masks in self._input_masks:
            # A pruned channel holding a constant (after a sigmoid) is not zero: its
            # weights stay, and strip folds their contribution into the bias.
            vector = _masks.keep_vector(use.channels, keep) | (
                _masks.zero_vector(use.channels) != 0
            )
            for mask in masks:
                length = int(mask.mask.shape[0])
                flags = (
                    np.repeat(vector, length // len(vector)) if length != len(vector) else vector
                )
                mask.mask.assign(flags.astype("float32"))
        for use, layer, weights in self._zeroed:
            vector = _masks.keep_vector(use.channels, keep)
            if vector.all():
                continue
            for name, axis in weights.items():
                variable = getattr(layer, name)
                value = np.array(variable.numpy())
                shape = [1] * value.ndim
                shape[axis] = -1
                variable.assign(value * vector.reshape(shape).astype(value.dtype))

    def current_keep(self):
        """The keep flags the masks hold now: `{id(producer wrapper): bool array over its filters}`."""
        return _masks.unit_keep_from_wrappers(self._analysis)

    # -- scheduling and state --------------------------------------------
    def disable_scheduler(self):
        """Stops the schedule from changing the rate (the search sets it from now on)."""
        self.scheduler.enabled = False

    def get_state(self):
        """The controller's state as plain JSON.

        Returns:
            A dict with `algorithm`, `compression_rate`, `pruning_level`,
            `frozen` and `scheduler` (the schedule's own state). The masks are
            model variables: they come back with the weights.
        """
        return {
            "algorithm": self.name,
            "compression_rate": self._rate,
            "pruning_level": self._level,
            "frozen": self.frozen,
            "scheduler": self.scheduler.get_state(),
        }

    def load_state(self, state):
        """Restores the rate without recomputing masks (they come back with the weights)."""
        self._rate = float(state["compression_rate"])
        self._level = float(state["pruning_level"])
        self.frozen = bool(state.get("frozen", False))
        if "scheduler" in state:
            self.scheduler.load_state(state["scheduler"])

    # -- reporting and export --------------------------------------------
    def statistics(self, full=False):
        """What pruning does to the model now: a `tf_aat.pruning.PruningStatistics`.

        Args:
            full: whether `str()` of the result is the table of every layer
                (True) or a short summary: totals, the largest groups and
                the groups left unpruned with the reasons (False, default).

        Returns:
            The statistics; `to_dict()` holds everything either way.

        Example:

        ```python
        print(ctrl.statistics())             # a dozen lines
        print(ctrl.statistics(full=True))    # one line per layer
        ctrl.statistics().to_dict()["flops_reduction"]
        ```
        """
        rows = _masks.model_cost(self._analysis, self.current_keep())
        return PruningStatistics(
            rows=rows,
            compression_rate=self._rate,
            pruning_level=self._level if self.groups else 0.0,
            prune_flops=self.prune_flops,
            achieved_compression_rate=self.achieved_compression_rate,
            reachable_compression_rate=self._reachable,
            groups=self._analysis.groups,
            skipped=self._analysis.skipped,
            keep=self.current_keep(),
            full=bool(full),
        )

    def strip_model(self, model=None):
        """A plain Keras copy of `model` (default: the controlled one) with the pruned
        filters physically removed; see `tf_aat.strip_model`."""
        return super().strip_model(model)
