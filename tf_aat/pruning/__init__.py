"""Filter pruning by geometric median, group-aware, with physical removal at strip."""

from tf_aat.pruning import _algorithm  # noqa: F401 - registers "filter_pruning"
from tf_aat.pruning._controller import FilterPruningController
from tf_aat.pruning._importance import geometric_median_scores
from tf_aat.pruning._statistics import PruningStatistics

__all__ = ["FilterPruningController", "PruningStatistics", "geometric_median_scores"]
