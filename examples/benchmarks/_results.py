"""Writing a benchmark's JSON results (read back by `examples.benchmarks.report`)."""

import json
import os


def write_results(path, results):
    """Writes `results` as indented JSON to `path`, creating its directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"\nWrote {path}")
