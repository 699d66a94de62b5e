"""Sparsity controllers: the level (the rate the search varies), masks, schedule, statistics."""

import logging

import keras
import numpy as np

from tf_aat import _graph, _statistics
from tf_aat._controller import RatedCompressionController
from tf_aat._wrapper import CompressionWrapper
from tf_aat.sparsity._layers import MagnitudeSparsityMask, RBSparsityMask
from tf_aat.sparsity._schedule import SparsityScheduler

logger = logging.getLogger("tf_aat.sparsity")

MAXIMAL_LEVEL = 0.99


def sparsity_entries(model, mask_type):
    """`(wrapper, weight name, mask layer)` for each sparsified weight of `model`."""
    entries = []
    for layer in _graph.leaf_layers(model):
        if not isinstance(layer, CompressionWrapper):
            continue
        for name, transforms in layer.weight_transforms.items():
            for transform in transforms:
                if isinstance(transform, mask_type):
                    entries.append((layer, name, transform))
    return entries


def _numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def effective_weight(wrapper, name):
    """The weight's value in the forward pass before quantization (inference mode)."""
    return np.asarray(keras.ops.convert_to_numpy(wrapper._masked_weight(name)))


class SparsityController(RatedCompressionController):
    """Common part of the magnitude and RB sparsity controllers.

    `compression_rate` is the sparsity level: the fraction of zeros in the
    sparsified kernels (conv, depthwise, separable and dense kernels; biases
    and BatchNormalization untouched). Setting it applies it at once.
    """

    mask_type = None

    def __init__(self, model, params):
        self.model = model
        self.params = params
        self.entries = sparsity_entries(model, self.mask_type)
        self.frozen = False
        self._level = 0.0
        self.scheduler = SparsityScheduler(self, params)
        if not self.entries:
            logger.warning(
                "%s found no conv, depthwise, separable or dense kernel to sparsify in "
                "model %r (check ignored_scopes / target_scopes).",
                self.name,
                model.name,
            )

    # -- rate ---------------------------------------------------------------
    @property
    def compression_rate(self):
        """The sparsity level: the fraction of zeros in the sparsified kernels, in [0, 1).

        Setting it applies it at once (magnitude: the masks are recomputed;
        RB: the loss's target is set and the masks follow with training).
        """
        return self._level

    @compression_rate.setter
    def compression_rate(self, rate):
        self._set_level(rate, source="user")

    @property
    def sparsity_level(self):
        """The level in force (the same as `compression_rate`)."""
        return self._level

    @property
    def maximal_compression_rate(self):
        """0.99: at least one weight in a hundred stays."""
        return MAXIMAL_LEVEL

    @property
    def minimal_compression_rate(self):
        """0.0: nothing zeroed."""
        return 0.0

    @staticmethod
    def _check_level(level):
        if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
            raise ValueError(
                f"Expected the sparsity level to be a number in [0, 1). Received: rate={level!r}"
            )
        level = float(level)
        if not 0.0 <= level < 1.0:
            raise ValueError(
                "Expected the sparsity level to be in [0, 1) (a level of 1 zeroes every "
                f"weight). Received: rate={level}"
            )
        return level

    def _set_level(self, level, source):
        raise NotImplementedError

    def freeze(self):
        """Masks stay as they are (the scheduler calls it from `sparsity_freeze_epoch` on)."""
        self.frozen = True

    def measured_level(self):
        """The fraction of zeros the sparsity masks give, over all sparsified weights."""
        zeros = total = 0
        for _, _, mask in self.entries:
            binary = mask.binary_mask()
            zeros += int(binary.size - np.count_nonzero(binary))
            total += int(binary.size)
        return zeros / total if total else 0.0

    # -- scheduling and state ---------------------------------------------
    def disable_scheduler(self):
        """Stops the schedule from changing the level (the search sets it from now on)."""
        self.scheduler.enabled = False

    def get_state(self):
        """The controller's state as plain JSON: `algorithm`, `compression_rate` (the level), `frozen` and `scheduler`.

        The masks are model variables: they come back with the weights.
        """
        return {
            "algorithm": self.name,
            "compression_rate": self._level,
            "frozen": self.frozen,
            "scheduler": self.scheduler.get_state(),
        }

    def load_state(self, state):
        """Restores the level without recomputing masks (they come back with the weights)."""
        self._level = float(state["compression_rate"])
        self.frozen = bool(state.get("frozen", False))
        if "scheduler" in state:
            self.scheduler.load_state(state["scheduler"])

    def statistics(self, full=False):
        """The sparsity of each sparsified weight and in all: a `SparsityStatistics`.

        Args:
            full: whether `str()` of the result lists every sparsified
                weight (True) or gives the totals and the largest weights
                (False, default).

        Returns:
            The statistics; `to_dict()` holds everything either way.
        """
        rows = []
        for wrapper, name, _ in self.entries:
            value = effective_weight(wrapper, name)
            nonzero = int(np.count_nonzero(value))
            rows.append(
                {
                    "layer": wrapper.name,
                    "weight": name,
                    "shape": list(value.shape),
                    "parameters": int(value.size),
                    "nonzero_parameters": nonzero,
                    "sparsity_level": 1.0 - nonzero / value.size if value.size else 0.0,
                }
            )
        return SparsityStatistics(
            algorithm=self.name,
            rows=rows,
            compression_rate=self._level,
            target_level=self.scheduler.target_level,
            mode=self.params.mode,
            model_parameters=_statistics.model_parameters(self.model),
            full=full,
        )


class MagnitudeSparsityController(SparsityController):
    """`magnitude_sparsity`: the least important weights are zeroed by a mask variable.

    Importance is `|w|` (`abs`) or `|w| / ||W||_2` over the weight tensor
    (`normed_abs`, NNCF's default). `global` mode zeroes the lowest
    `round(level * N)` importances over all sparsified weights together;
    `local` mode does it within each weight, so every kernel has the level.
    Ties are broken so the count is exact. Masks are recomputed from the
    current weights whenever the level is set (each epoch while the schedule
    runs, until `sparsity_freeze_epoch`).
    """

    name = "magnitude_sparsity"
    mask_type = MagnitudeSparsityMask

    def _importance(self, wrapper, name):
        value = _numpy(getattr(wrapper.layer, name)).astype(np.float64)
        if name in wrapper.masked_weights and wrapper.mask is not None:
            # Channels pruned by filter pruning count as zeros already.
            axis = wrapper.masked_weights[name] % value.ndim
            shape = [1] * value.ndim
            shape[axis] = -1
            value = value * _numpy(wrapper.mask).reshape(shape)
        # Zeros other transforms make (filter pruning's input-channel masks) count
        # toward the level: they get importance 0, so they are ranked first.
        for transform in wrapper.weight_transforms.get(name, ()):
            if not isinstance(transform, self.mask_type):
                value = np.asarray(keras.ops.convert_to_numpy(transform(value)), np.float64)
        importance = np.abs(value)
        if self.params.weight_importance == "normed_abs":
            norm = float(np.sqrt(np.sum(value * value)))
            importance = importance / norm if norm > 0 else importance
        return importance

    @staticmethod
    def _lowest(importance, count):
        """A bool array, True for the `count` lowest entries of the flat `importance`."""
        chosen = np.zeros(importance.size, bool)
        if count <= 0:
            return chosen
        if count >= importance.size:
            chosen[:] = True
            return chosen
        chosen[np.argpartition(importance, count - 1)[:count]] = True
        return chosen

    def _set_level(self, level, source):
        level = self._check_level(level)
        if source == "scheduler" and self.frozen:
            return
        importances = [self._importance(w, n).reshape(-1) for w, n, _ in self.entries]
        if self.params.mode == "local":
            zeroed = [self._lowest(imp, int(round(level * imp.size))) for imp in importances]
        elif importances:
            flat = np.concatenate(importances)
            chosen = self._lowest(flat, int(round(level * flat.size)))
            zeroed = np.split(chosen, np.cumsum([imp.size for imp in importances])[:-1])
        else:
            zeroed = []
        for (_, _, mask), zero in zip(self.entries, zeroed):
            mask.mask.assign((~zero).reshape(tuple(mask.mask.shape)).astype("float32"))
        self._level = level


class RBSparsityController(SparsityController):
    """`rb_sparsity`: masks are learned (a logit per weight) under a loss toward the level.

    Setting the level sets the loss's target, `1 - level`, in every mask
    layer; the masks reach it by training. Strip keeps the weights whose
    logit is above 0. Setting a level by hand (or by the search) unfreezes
    the masks so that they can follow it.
    """

    name = "rb_sparsity"
    mask_type = RBSparsityMask

    def _set_level(self, level, source):
        level = self._check_level(level)
        if source == "scheduler" and self.frozen:
            return
        if source != "scheduler" and self.frozen:
            self._assign_frozen(False)
        for _, _, mask in self.entries:
            mask.target.assign(1.0 - level)
        self._level = level

    def freeze(self):
        """Masks become their binarised logits and the loss stops (NNCF's freeze)."""
        self._assign_frozen(True)

    def _assign_frozen(self, frozen):
        self.frozen = bool(frozen)
        for _, _, mask in self.entries:
            mask.frozen.assign(1.0 if frozen else 0.0)


class SparsityStatistics(_statistics.StatisticsText):
    """Per-weight and overall sparsity: fraction of zeros and non-zero parameters.

    `str()` gives the totals and the largest sparsified weights;
    `to_str(full=True)` (or `statistics(full=True)`) every weight.

    Attributes:
        algorithm: `"magnitude_sparsity"` or `"rb_sparsity"`.
        rows: one dict per sparsified weight: `layer`, `weight`, `shape`,
            `parameters`, `nonzero_parameters`, `sparsity_level`.
        compression_rate: the level set.
        target_level: the schedule's target level.
        mode: `"global"` or `"local"`.
        model_parameters: `count_params()` of the model described (its own
            weights: the masks are not counted).
        full: whether `str()` lists every weight.
    """

    def __init__(
        self,
        algorithm,
        rows,
        compression_rate,
        target_level,
        mode,
        model_parameters=None,
        full=False,
    ):
        self.algorithm = algorithm
        self.rows = rows
        self.compression_rate = compression_rate
        self.target_level = target_level
        self.mode = mode
        self.model_parameters = model_parameters
        self.full = bool(full)

    @property
    def parameters(self):
        """The number of parameters in the sparsified weights."""
        return sum(r["parameters"] for r in self.rows)

    @property
    def nonzero_parameters(self):
        """How many of them are not zero."""
        return sum(r["nonzero_parameters"] for r in self.rows)

    @property
    def sparsity_level(self):
        """The fraction of zeros over all sparsified weights."""
        total = self.parameters
        return 1.0 - self.nonzero_parameters / total if total else 0.0

    def to_dict(self):
        """Everything as plain JSON: the levels, the totals and one dict per weight (`layers`)."""
        return {
            "algorithm": self.algorithm,
            "compression_rate": self.compression_rate,
            "target_level": self.target_level,
            "sparsity_level_setting_mode": self.mode,
            "sparsity_level": self.sparsity_level,
            "parameters": self.parameters,
            "nonzero_parameters": self.nonzero_parameters,
            "model_parameters": self.model_parameters,
            "layers": [dict(r) for r in self.rows],
        }

    def _text(self, full):
        shown = self.rows if full else _statistics.largest(self.rows, lambda r: r["parameters"])
        header = ("Layer", "Weight", "Shape", "Parameters", "Non-zero", "Sparsity")
        lines = [header] + [
            (
                r["layer"],
                r["weight"],
                "x".join(str(d) for d in r["shape"]),
                str(r["parameters"]),
                str(r["nonzero_parameters"]),
                f"{r['sparsity_level']:.3f}",
            )
            for r in shown
        ]
        lines.append(
            (
                "all",
                "",
                "",
                str(self.parameters),
                str(self.nonzero_parameters),
                f"{self.sparsity_level:.3f}",
            )
        )
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        text = [
            f"{self.algorithm} statistics: level {self.compression_rate:.4f} "
            f"({self.mode} mode), measured {self.sparsity_level:.4f}"
        ]
        if self.model_parameters is not None:
            zeros = self.parameters - self.nonzero_parameters
            text.append(
                f"  model parameters: {self.model_parameters:,}, of which {self.parameters:,} "
                f"sparsified and {zeros:,} zero"
            )
        if not full:
            text.append("  largest sparsified weights:")
        for index, row in enumerate(lines):
            text.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
            if index == 0 or index == len(lines) - 2:
                text.append("  " + "  ".join("-" * width for width in widths))
        hint = _statistics.full_table_hint(len(shown), len(self.rows), "weights")
        if hint:
            text.append(hint)
        return "\n".join(text)
