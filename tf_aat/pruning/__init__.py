"""Filter pruning by geometric median, group-aware across residual connections."""
