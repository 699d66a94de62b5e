"""`QuantizationController`: range initialisation, BN adaptation and statistics of QAT."""

import logging

import keras
import numpy as np
import tensorflow as tf

from tf_aat import _graph, _progress, _statistics
from tf_aat._controller import CompressionController
from tf_aat._wrapper import CompressionWrapper
from tf_aat.quantization import _data
from tf_aat.quantization._quantizers import ActivationQuantizer, WeightQuantizer

logger = logging.getLogger("tf_aat")

# Values kept per quantizer for percentile ranges (a uniform subsample beyond this).
_MAX_KEPT_VALUES = 200_000
_RANGES_FROM_DATA = (
    "activation ranges are initialised from it: one NaN or inf makes the ranges, and so "
    "every quantized output, NaN"
)
_STATISTICS_FROM_DATA = (
    "BatchNormalization statistics are re-estimated from it: one NaN or inf makes them NaN"
)


def _layers(count):
    return f"{count} BatchNormalization layer" + ("" if count == 1 else "s")


class _RangeObserver:
    """Collects what range initialisation needs from the float activations."""

    def __init__(self, kind, rng):
        self.kind = kind
        self.rng = rng
        self.mins = []
        self.maxs = []
        self.values = []
        self.low_percentiles = []
        self.high_percentiles = []
        self.percentiles = (0.1, 99.9)

    def __call__(self, quantizer, x):
        del quantizer
        x = np.asarray(x, dtype="float32").reshape(-1)
        self.mins.append(float(x.min()))
        self.maxs.append(float(x.max()))
        if self.kind in ("percentile", "threshold"):
            if len(x) > _MAX_KEPT_VALUES // 4:
                x = self.rng.choice(x, _MAX_KEPT_VALUES // 4, replace=False)
            self.values.append(x)
        elif self.kind == "mean_percentile":
            low, high = np.percentile(x, self.percentiles)
            self.low_percentiles.append(float(low))
            self.high_percentiles.append(float(high))

    def range(self):
        if self.kind == "min_max":
            return min(self.mins), max(self.maxs)
        if self.kind == "mean_min_max":
            return float(np.mean(self.mins)), float(np.mean(self.maxs))
        if self.kind == "mean_percentile":
            return float(np.mean(self.low_percentiles)), float(np.mean(self.high_percentiles))
        values = np.concatenate(self.values)
        if len(values) > _MAX_KEPT_VALUES:
            values = self.rng.choice(values, _MAX_KEPT_VALUES, replace=False)
        low, high = np.percentile(values, self.percentiles)
        return float(low), float(high)


class QuantizationScheduler:
    """QAT has nothing to schedule; this keeps NNCF's scheduler interface."""

    def __init__(self):
        self.current_epoch = -1
        self.current_step = -1

    def epoch_step(self, next_epoch=None):
        self.current_epoch = self.current_epoch + 1 if next_epoch is None else int(next_epoch)

    def step(self, next_step=None):
        self.current_step = self.current_step + 1 if next_step is None else int(next_step)

    def get_state(self):
        return {"current_epoch": self.current_epoch, "current_step": self.current_step}

    def load_state(self, state):
        self.current_epoch = int(state["current_epoch"])
        self.current_step = int(state["current_step"])


class QuantizationStatistics(_statistics.StatisticsText):
    """Which tensors are quantized and their current ranges.

    `str()` gives the counts, the parameters in int8 weights and the layers
    left in float; `to_str(full=True)` (or `statistics(full=True)`) also
    every quantized weight and every activation range.

    Attributes:
        weight_rows: one dict per quantized weight: `layer`, `weight`,
            `granularity`, `parameters`.
        activation_rows: one dict per activation quantizer: `quantizer`,
            `min`, `max`, `symmetric`.
        skipped: `(layer name, reason)` of layers left in float.
        model_parameters: `count_params()` of the model described (its own
            weights; the quantizers' ranges are not counted).
        full: whether `str()` lists every quantizer.
    """

    def __init__(self, weight_rows, activation_rows, skipped, model_parameters=None, full=False):
        self.weight_rows = weight_rows
        self.activation_rows = activation_rows
        self.skipped = skipped
        self.model_parameters = model_parameters
        self.full = bool(full)

    def to_dict(self):
        """The statistics as plain JSON.

        Returns:
            A dict with `algorithm` (`"quantization"`), `num_weight_quantizers`,
            `num_activation_quantizers`, `weights` (one dict per quantized weight:
            `layer`, `weight`, `granularity`), `activations` (one dict per
            activation quantizer: `quantizer`, `min`, `max`, `symmetric`) and
            `skipped_layers` (`layer`, `reason`).
        """
        return {
            "algorithm": "quantization",
            "num_weight_quantizers": len(self.weight_rows),
            "num_activation_quantizers": len(self.activation_rows),
            "weights": [dict(r) for r in self.weight_rows],
            "activations": [dict(r) for r in self.activation_rows],
            "skipped_layers": [{"layer": n, "reason": r} for n, r in self.skipped],
            "quantized_parameters": sum(r.get("parameters", 0) for r in self.weight_rows),
            "model_parameters": self.model_parameters,
        }

    def _text(self, full):
        lines = [
            "Quantization statistics (int8)",
            f"  weight quantizers:     {len(self.weight_rows)}",
            f"  activation quantizers: {len(self.activation_rows)}",
        ]
        if self.model_parameters is not None:
            quantized = sum(r.get("parameters", 0) for r in self.weight_rows)
            lines.append(
                f"  parameters in int8 weights: {quantized:,} of {self.model_parameters:,}"
            )
        if not full:
            kinds = {}
            for r in self.weight_rows:
                kinds[r["granularity"]] = kinds.get(r["granularity"], 0) + 1
            if kinds:
                lines.append(
                    "  weights: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
                )
            by_reason = {}
            for name, reason in self.skipped:
                by_reason.setdefault(reason, []).append(name)
            for reason, names in by_reason.items():
                lines.append(f"  not quantized: {_statistics.names_list(names)}: {reason}")
            if self.weight_rows or self.activation_rows:
                lines.append("  (statistics(full=True) lists every quantizer and its range)")
            return "\n".join(lines)
        if self.weight_rows:
            width = max(len(r["layer"]) for r in self.weight_rows)
            column = max(8, *(len(r["weight"]) for r in self.weight_rows))
            lines.append(f"  {'layer':<{width}}  {'weight':<{column}} granularity")
            for r in self.weight_rows:
                lines.append(f"  {r['layer']:<{width}}  {r['weight']:<{column}} {r['granularity']}")
        if self.activation_rows:
            width = max(len(r["quantizer"]) for r in self.activation_rows)
            lines.append(f"  {'activation quantizer':<{width}}  {'min':>10} {'max':>10}")
            for r in self.activation_rows:
                lines.append(f"  {r['quantizer']:<{width}}  {r['min']:>10.4f} {r['max']:>10.4f}")
        for name, reason in self.skipped:
            lines.append(f"  not quantized: {name}: {reason}")
        return "\n".join(lines)


class QuantizationController(CompressionController):
    """Controls 8-bit quantization-aware training of a compressed model.

    Created by `tf_aat.create_compressed_model` for a `quantization` config
    section. It initialises the activation ranges from `init_data` (then
    adapts BatchNormalization statistics to the quantized model) and reports
    what is quantized; during training the ranges follow the data by
    themselves.
    """

    name = "quantization"

    def __init__(self, model, params, skipped=()):
        self.model = model
        self.params = params
        self.skipped = list(skipped)
        self.scheduler = QuantizationScheduler()
        self.initialized = False

    @property
    def activation_quantizers(self):
        """Every `ActivationQuantizer` of the model (those inside separable convolutions included), in layer order."""
        quantizers = []
        for layer in _graph.leaf_layers(self.model):
            if isinstance(layer, ActivationQuantizer):
                quantizers.append(layer)
            elif getattr(layer, "intermediate_quantizer", None) is not None:
                quantizers.append(layer.intermediate_quantizer)  # inside a separable conv
        return quantizers

    @property
    def weight_quantized_layers(self):
        """The `CompressionWrapper`s whose weights have a `WeightQuantizer`, in layer order."""
        return [
            layer
            for layer in _graph.leaf_layers(self.model)
            if isinstance(layer, CompressionWrapper)
            and any(isinstance(q, WeightQuantizer) for q in layer.weight_quantizers.values())
        ]

    # -- initialisation ----------------------------------------------------
    def initialize(self, init_data):
        """Sets activation ranges from `init_data`, then adapts BatchNormalization.

        Raises `ValueError` for a NaN or inf in the samples read, naming the
        sample's index in the order `init_data` is iterated. Inside
        `create_compressed_model` each step shows its progress as its
        `verbose` says; called directly, the counts go to the `tf_aat` logger.
        """
        settings = self.params.range_init
        quantizers = self.activation_quantizers
        if settings.num_init_samples > 0 and quantizers:
            rng = np.random.default_rng(0)
            observers = {}
            for quantizer in quantizers:
                observer = _RangeObserver(settings.type, rng)
                observer.percentiles = (settings.min_percentile, settings.max_percentile)
                observers[id(quantizer)] = observer
                quantizer.observer = observer
            progress = _progress.Progress(
                f"Initialising {len(quantizers)} activation ranges", settings.num_init_samples
            )
            try:
                seen = 0
                batches = _data.take_samples(init_data, settings.num_init_samples)
                for batch in _data.finite_batches(batches, "init_data", _RANGES_FROM_DATA):
                    # Eager call: the observers are Python code that must see values.
                    self.model(batch, training=False)
                    seen += _data.batch_length(batch)
                    progress.update(_data.batch_length(batch))
            finally:
                for quantizer in quantizers:
                    quantizer.observer = None
            if seen == 0:
                raise ValueError(
                    "Expected `init_data` to yield at least one batch of inputs for range "
                    f"initialisation. Received: init_data={type(init_data).__name__} with no batches"
                )
            for quantizer in quantizers:
                observer = observers[id(quantizer)]
                if observer.mins:
                    quantizer.set_range(*observer.range())
            progress.close(f"Initialised {len(quantizers)} activation ranges from {seen} samples.")
        self._adapt_batch_norm(init_data, None, "init_data")
        self.initialized = True

    def adapt_batch_norm(self, data, num_samples=None):
        """Re-estimates BatchNormalization statistics on the quantized model (NNCF's BN adaptation).

        Raises `ValueError` for a NaN or inf in `data`, naming the sample's index.
        """
        self._adapt_batch_norm(data, num_samples, "data")

    def _adapt_batch_norm(self, data, num_samples, name):
        num_samples = self.params.num_bn_adaptation_samples if num_samples is None else num_samples
        batch_norms = [
            layer
            for layer in _graph.leaf_layers(self.model)
            if isinstance(
                layer.layer if isinstance(layer, CompressionWrapper) else layer,
                keras.layers.BatchNormalization,
            )
        ]
        if num_samples <= 0 or not batch_norms:
            return
        # Only BatchNormalization statistics may move: keep ranges and other state as they are.
        saved = [(v, v.numpy()) for q in self.activation_quantizers for v in q.weights]
        forward = tf.function(lambda x: self.model(x, training=True), reduce_retracing=True)
        batches = _data.take_samples(data, num_samples)
        progress = _progress.Progress(f"Adapting {_layers(len(batch_norms))}", num_samples)
        for batch in _data.finite_batches(batches, name, _STATISTICS_FROM_DATA):
            forward(batch)
            progress.update(_data.batch_length(batch))
        for variable, value in saved:
            variable.assign(value)
        progress.close(f"Adapted {_layers(len(batch_norms))} on {progress.seen} samples.")

    # -- NNCF controller interface -----------------------------------------
    def get_state(self):
        """The controller's state as plain JSON: whether the ranges were initialised, and the scheduler's counters.

        The ranges themselves are model variables: they come back with the weights.
        """
        return {
            "algorithm": self.name,
            "initialized": self.initialized,
            "scheduler": self.scheduler.get_state(),
        }

    def load_state(self, state):
        """Restores what `get_state` returned (the ranges come back with the model's weights)."""
        self.initialized = bool(state.get("initialized", True))
        if "scheduler" in state:
            self.scheduler.load_state(state["scheduler"])

    def statistics(self, full=False):
        """What is quantized and the current ranges: a `QuantizationStatistics`.

        Args:
            full: whether `str()` of the result lists every weight and
                activation quantizer (True) or gives the counts (False,
                default).

        Returns:
            The statistics; `to_dict()` holds everything either way.
        """
        weight_rows = []
        for wrapper in self.weight_quantized_layers:
            for weight, quantizer in wrapper.weight_quantizers.items():
                weight_rows.append(
                    {
                        "layer": wrapper.name,
                        "weight": weight,
                        "granularity": "per_channel" if quantizer.per_channel else "per_tensor",
                        "parameters": int(np.prod(getattr(wrapper.layer, weight).shape)),
                    }
                )
        activation_rows = [
            {
                "quantizer": q.name,
                "min": float(q.range_min.numpy()),
                "max": float(q.range_max.numpy()),
                "symmetric": q.symmetric,
            }
            for q in self.activation_quantizers
        ]
        return QuantizationStatistics(
            weight_rows,
            activation_rows,
            self.skipped,
            model_parameters=_statistics.model_parameters(self.model),
            full=full,
        )

    def strip_model(self, model=None):
        """The model as plain layers plus its quantizers (what `export_tflite` takes)."""
        return super().strip_model(model)
