"""What tf_aat shows while it works: Keras-style progress bars and messages.

Messages take Keras's own route (as `keras.utils.Progbar` and `fit()` do):
to stdout while Keras's interactive logging is on, else to absl logging, so
`keras.config.disable_interactive_logging()` silences or redirects them
together with Keras's own output.

`create_compressed_model(..., verbose=...)` sets the verbosity of its long
steps (quantization range initialisation, BatchNormalization adaptation):
0 silent, 1 a progress bar, 2 one line per step, "auto" 1 while Keras's
interactive logging is on, else 2.
"""

import contextlib
import contextvars
import logging
import sys

logger = logging.getLogger("tf_aat")

VERBOSE_CHOICES = ("auto", 0, 1, 2)
_verbose = contextvars.ContextVar("tf_aat_verbose", default=0)


def check_verbose(verbose):
    """`verbose` as 0, 1 or 2; a `ValueError` for anything else."""
    if isinstance(verbose, bool) or verbose not in VERBOSE_CHOICES:
        raise ValueError(
            f"Expected `verbose` to be one of {list(VERBOSE_CHOICES)} (0: silent, 1: progress "
            f"bar, 2: one line per step). Received: verbose={verbose!r}"
        )
    if verbose == "auto":
        import keras

        return 1 if keras.config.is_interactive_logging_enabled() else 2
    return int(verbose)


@contextlib.contextmanager
def verbosity(verbose):
    """Sets the verbosity of the long steps run inside the `with` block."""
    token = _verbose.set(check_verbose(verbose))
    try:
        yield
    finally:
        _verbose.reset(token)


def current_verbosity():
    """The verbosity in force (0 outside `create_compressed_model`)."""
    return _verbose.get()


def print_message(message):
    """Prints `message` the way Keras prints its own (stdout, or absl when not interactive)."""
    import keras

    message = str(message)
    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        from absl import logging as absl_logging

        absl_logging.info(message)


class Progress:
    """Counts the samples of one long step and shows them as the verbosity says.

    Verbosity 1 shows a `keras.utils.Progbar` under a title line, 2 only the
    closing line with the counts; 0 sends that line to the `tf_aat` logger
    at INFO only.
    """

    def __init__(self, title, target, unit="samples", verbose=None):
        self.title = title
        self.target = int(target) if target else None
        self.unit = unit
        self.verbose = current_verbosity() if verbose is None else check_verbose(verbose)
        self.seen = 0
        self._bar = None
        if self.verbose == 1:
            import keras

            print_message(title + (f" ({self.target} {unit})" if self.target else ""))
            self._bar = keras.utils.Progbar(self.target, unit_name=unit.rstrip("s"))

    def update(self, count):
        """Adds `count` samples."""
        self.seen += int(count)
        if self._bar is not None:
            # The bar's own line ends in `close()`, which knows the final count.
            self._bar.update(self.seen, finalize=False)

    def close(self, summary):
        """Ends the step: finishes the bar and says `summary` (a line with the counts)."""
        if self._bar is not None:
            self._bar.target = self.seen
            self._bar.update(self.seen, finalize=True)
        if self.verbose >= 1:
            print_message(summary)
        else:
            logger.info("%s", summary)
