"""Runs the example scripts as a user does: `python -m module --flags`, in a subprocess
(the absl flags of several scripts clash in one process)."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(module, *flags, timeout=600):
    """The finished process (stdout and stderr captured as text), whatever its exit code."""
    return subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_module(module, *flags, timeout=600):
    """Runs the script, asserts it succeeded and returns its stdout."""
    result = run_script(module, *flags, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout
