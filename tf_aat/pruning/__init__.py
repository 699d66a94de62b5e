"""Filter pruning by geometric median, group-aware, with physical removal at strip."""

from tf_aat.pruning import _algorithm  # noqa: F401 - registers "filter_pruning"
from tf_aat.pruning._importance import geometric_median_scores

__all__ = ["geometric_median_scores"]
