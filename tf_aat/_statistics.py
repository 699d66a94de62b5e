"""What the statistics objects share: the model's own parameter count and the short view.

Every `ctrl.statistics()` prints a short summary by default (totals and the
largest few groups or layers) and the full table with `statistics(full=True)`
or `stats.to_str(full=True)`; `to_dict()` always holds everything.
"""

# How many of the largest groups (or layers) the short summary lists.
SHORT_COUNT = 5


def is_machinery(layer):
    """Layers compression adds (quantizers, masks): not part of the model it describes."""
    from tf_aat.quantization._quantizers import ActivationQuantizer, FixedRangeQuantizer

    return isinstance(layer, (ActivationQuantizer, FixedRangeQuantizer))


def model_parameters(model):
    """The parameter count of the model a compressed `model` stands for.

    That is `count_params()` of the uncompressed model: each wrapped layer
    counts its own weights (not its masks or quantizers), and the quantizers
    compression inserted count nothing.
    """
    from tf_aat import _graph
    from tf_aat._wrapper import CompressionWrapper

    total = 0
    for layer in _graph.leaf_layers(model):
        if isinstance(layer, CompressionWrapper):
            total += layer.layer.count_params()
        elif not is_machinery(layer):
            total += layer.count_params()
    return total


def largest(rows, key, count=SHORT_COUNT):
    """The `count` rows with the largest `key(row)`, largest first (ties: original order)."""
    order = sorted(range(len(rows)), key=lambda i: (-key(rows[i]), i))
    return [rows[i] for i in order[:count]]


def full_table_hint(shown, total, what):
    """The line that says the short summary left rows out, and how to see them."""
    if shown >= total:
        return None
    return f"  ({shown} of {total} {what} shown; statistics(full=True) lists them all)"


def names_list(names, count=4):
    """`a, b, c, d (+3 more)`."""
    names = list(names)
    text = ", ".join(names[:count])
    return text + (f" (+{len(names) - count} more)" if len(names) > count else "")


class StatisticsText:
    """`str()` is the short summary, or the full table when made with `full=True`."""

    full = False

    def to_str(self, full=None):
        """The statistics as text.

        Args:
            full: True for the full per-layer table, False for the short
                summary; None (default) for what `statistics(full=...)` asked.

        Returns:
            The text, several lines.
        """
        return self._text(self.full if full is None else bool(full))

    def _text(self, full):
        raise NotImplementedError

    def __str__(self):
        return self.to_str()
