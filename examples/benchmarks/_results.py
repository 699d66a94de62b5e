"""Writing a benchmark's JSON results (read back by `examples.benchmarks.report`)."""

import json
import os


def portable(value, root=None):
    """`value` with every absolute path under `root` (default: the working
    directory) made relative to it, so a committed result names no machine."""
    root = os.path.abspath(root or os.getcwd()) + os.sep
    if isinstance(value, str):
        return os.path.relpath(value, root) if value.startswith(root) else value
    if isinstance(value, dict):
        return {key: portable(item, root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item, root) for item in value]
    return value


def write_results(path, results):
    """Writes `results` as indented JSON to `path`, creating its directory.

    Paths under the working directory are written relative to it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(portable(results), f, indent=2, default=float)
    print(f"\nWrote {path}")


def write_json_atomically(path, data):
    """Writes `data` as JSON through a temporary file and a rename, so that a crash
    leaves the old file or the new one, never half of one."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def paired_verdict(first_only, second_only):
    """Whether the first of two classifiers scored on the same images is better,
    worse or tied with the second, from the images only one of them gets right
    (McNemar's test, normal approximation, two-sided 5%). Returns (z, verdict)."""
    discordant = first_only + second_only
    z = (first_only - second_only) / discordant**0.5 if discordant else 0.0
    return z, "better" if z >= 1.96 else "worse" if z <= -1.96 else "tied"
