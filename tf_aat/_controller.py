"""The controller contract every algorithm's controller follows, and the composite.

A controller is the handle `create_compressed_model` returns: it reports
statistics, strips, saves and restores its state and owns a scheduler. A
controller whose algorithm has a compression rate (filter pruning's fraction
of filters, sparsity's level) is a `RatedCompressionController`: the
accuracy-aware search varies that rate, between its bounds.
"""

from tf_aat import _algorithms


class CompressionScheduler:
    """Steps an algorithm's schedule; NNCF's `epoch_step()` / `step()` contract.

    `current_level` and `target_level` are the rate the schedule sets now and
    the one it ends at (None for an algorithm without a rate).
    """

    current_epoch = -1
    current_level = None
    target_level = None

    def epoch_step(self, next_epoch=None):
        """Called at the beginning of each epoch."""

    def step(self, next_step=None):
        """Called before each optimizer step."""

    def get_state(self):
        """The schedule's state, as plain JSON."""
        return {}

    def load_state(self, state):
        """Restores what `get_state` returned."""


class CompressionController:
    """Base of the controllers `tf_aat.create_compressed_model` returns.

    Attributes:
        name: the algorithm's config name.
        model: the compressed model it controls.
        scheduler: its `CompressionScheduler` (a documented property).
    """

    name = None
    has_rate = False
    _scheduler = None

    @property
    def scheduler(self):
        """The controller's `CompressionScheduler`: NNCF's `epoch_step()` / `step()` contract.

        Call `ctrl.scheduler.epoch_step()` at the beginning of each epoch (and
        `step()` before each optimizer step) in a custom loop;
        `tf_aat.CompressionCallback` and `tf_aat.AccuracyAwareCallback` do it
        inside `fit()`. Its `current_level` and `target_level` are the rate
        the schedule sets now and the one it ends at.

        Example:

        ```python
        for epoch in range(epochs):
            ctrl.scheduler.epoch_step()
            train_one_epoch(compressed)
        ```
        """
        return self._scheduler

    @scheduler.setter
    def scheduler(self, scheduler):
        self._scheduler = scheduler

    def statistics(self, full=False):
        """What the algorithm did to the model: an object with `to_dict()` and a readable `str()`.

        Args:
            full: whether `str()` of the result is the full per-layer table
                (True) or a short summary with the totals and the largest
                groups or layers (False, default).

        Returns:
            The algorithm's statistics object; `to_dict()` holds everything
            whatever `full` is, and `to_str(full=...)` gives either text.
        """
        raise NotImplementedError

    def strip_model(self, model=None):
        """A deployable copy of `model` (default: the controlled one) without
        training-time machinery; see `tf_aat.strip_model`."""
        return _algorithms.strip_model(self.model if model is None else model)

    def get_state(self):
        """The controller's state (rate, schedule), as plain JSON."""
        return {}

    def load_state(self, state):
        """Restores what `get_state` returned (weights come back with the model)."""

    def disable_scheduler(self):
        """Stops the schedule from changing the model (the search drives it from now on)."""


class RatedCompressionController(CompressionController):
    """A controller whose algorithm has a compression rate the search can vary.

    Setting `compression_rate` applies it to the model at once.
    """

    has_rate = True

    @property
    def compression_rate(self):
        """The current compression rate, in [minimal_compression_rate, maximal_compression_rate]."""
        raise NotImplementedError

    @compression_rate.setter
    def compression_rate(self, rate):
        raise NotImplementedError

    @property
    def maximal_compression_rate(self):
        """The highest rate the algorithm can reach on this model."""
        return 1.0

    @property
    def minimal_compression_rate(self):
        """The lowest rate (0: nothing compressed)."""
        return 0.0


def has_rate(ctrl):
    """True when the search can vary `ctrl`'s compression rate."""
    return bool(getattr(ctrl, "has_rate", False))


class CompositeCompressionController(RatedCompressionController):
    """Drives several algorithms together.

    The rate it exposes (and the search varies) is that of the algorithm
    whose config section holds `accuracy_aware_training`, else that of the
    only algorithm with a rate. With several rated algorithms and no such
    section, reading the rate raises an error naming them.
    """

    name = "composite"

    def __init__(self, controllers, config, rated_name=None):
        self.children = list(controllers)
        self.config = config
        rated = [c for c in self.children if has_rate(c)]
        self._rated = None
        if rated_name is not None:
            self._rated = next((c for c in rated if c.name == rated_name), None)
        elif len(rated) == 1:
            self._rated = rated[0]
        self._candidates = [c.name for c in rated]
        self.scheduler = CompositeScheduler(
            [c.scheduler for c in self.children],
            None if self._rated is None else self._rated.scheduler,
        )

    @property
    def has_rate(self):
        """Whether one child's rate is exposed (and so searchable) as this controller's rate."""
        return self._rated is not None

    @property
    def rated(self):
        """The child controller whose rate this controller exposes (None: no rate)."""
        return self._rated

    def _rated_child(self):
        if self._rated is None:
            if self._candidates:
                raise ValueError(
                    "Several algorithms have a compression rate, so which one to set is "
                    "ambiguous. Expected an `accuracy_aware_training` section inside the "
                    "algorithm section whose rate is searched, or set the rate on one of "
                    f"`ctrl.children`. Received: algorithms with a rate={self._candidates}"
                )
            raise AttributeError(
                "None of the configured algorithms has a compression rate "
                f"(algorithms: {[c.name for c in self.children]})."
            )
        return self._rated

    @property
    def model(self):
        """The compressed model (the same for every child)."""
        return self.children[0].model

    @property
    def compression_rate(self):
        """The rate of the rated child (see the class docstring); setting it sets that child's.

        Raises:
            ValueError: several children have a rate and the config does not
                say which one the search varies.
            AttributeError: no child has a rate.
        """
        return self._rated_child().compression_rate

    @compression_rate.setter
    def compression_rate(self, rate):
        self._rated_child().compression_rate = rate

    @property
    def maximal_compression_rate(self):
        """The rated child's maximal rate."""
        return self._rated_child().maximal_compression_rate

    @property
    def minimal_compression_rate(self):
        """The rated child's minimal rate."""
        return self._rated_child().minimal_compression_rate

    def disable_scheduler(self):
        """Stops every child's schedule from changing the model."""
        for child in self.children:
            child.disable_scheduler()

    def get_state(self):
        """`{"children": [each child's get_state()]}`, in the order of `children`."""
        return {"children": [c.get_state() for c in self.children]}

    def load_state(self, state):
        """Restores what `get_state` returned, child by child."""
        for child, child_state in zip(self.children, state["children"]):
            child.load_state(child_state)

    def statistics(self, full=False):
        """Each child's statistics together (`CompositeStatistics`); `full` as in the children."""
        # A registered algorithm's controller may not take `full`: ask it only when set.
        return CompositeStatistics(
            [c.statistics(full=True) if full else c.statistics() for c in self.children]
        )


class CompositeStatistics:
    """The statistics of each algorithm of a composite controller."""

    def __init__(self, parts):
        self.parts = parts

    def to_dict(self):
        """`{algorithm name: that algorithm's statistics dict}`."""
        result = {}
        for index, part in enumerate(self.parts):
            values = part.to_dict()
            result[values.get("algorithm", str(index))] = values
        return result

    def to_str(self, full=None):
        """Each algorithm's text (short, or full with `full=True`), a blank line apart."""
        return "\n\n".join(p.to_str(full) if hasattr(p, "to_str") else str(p) for p in self.parts)

    def __str__(self):
        return self.to_str()


class CompositeScheduler(CompressionScheduler):
    """Steps every child's scheduler; its levels are the rated child's."""

    def __init__(self, schedulers, rated=None):
        self.schedulers = schedulers
        self._rated = rated

    @property
    def current_epoch(self):
        return max((getattr(s, "current_epoch", -1) for s in self.schedulers), default=-1)

    @property
    def current_level(self):
        return None if self._rated is None else getattr(self._rated, "current_level", None)

    @property
    def target_level(self):
        return None if self._rated is None else getattr(self._rated, "target_level", None)

    def epoch_step(self, next_epoch=None):
        for scheduler in self.schedulers:
            scheduler.epoch_step(next_epoch)

    def step(self, next_step=None):
        for scheduler in self.schedulers:
            scheduler.step(next_step)

    def get_state(self):
        return [s.get_state() for s in self.schedulers]

    def load_state(self, state):
        for scheduler, s in zip(self.schedulers, state):
            scheduler.load_state(s)
