"""Batch-1 LiteRT latency of several .tflite files, timed interleaved in one process.

The machine is shared and noisy, so the benchmarks read ratios between files
timed side by side: every file is timed once per round, the rounds start at a
different file each time, and each file's figure is the median invocation.
"""

import statistics
import time

import numpy as np
from ai_edge_litert import interpreter as litert

XNNPACK = "xnnpack"  # LiteRT's default: the XNNPACK delegate where it applies
BUILTIN = "builtin"  # TFLite's builtin kernels only (no default delegate)


def interpreter(path, delegate=XNNPACK, threads=1, warmup=10):
    """A LiteRT interpreter for `path`, its input set to a fixed random sample and
    invoked `warmup` times (a DENSIFY op, if any, runs there, once)."""
    kwargs = {"num_threads": threads}
    if delegate == BUILTIN:
        kwargs["experimental_op_resolver_type"] = (
            litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    elif delegate != XNNPACK:
        raise ValueError(f"delegate must be {XNNPACK!r} or {BUILTIN!r}; received {delegate!r}")
    result = litert.Interpreter(model_path=path, **kwargs)
    result.allocate_tensors()
    detail = result.get_input_details()[0]
    sample = np.random.default_rng(0).uniform(0, 1, detail["shape"]).astype(detail["dtype"])
    result.set_tensor(detail["index"], sample)
    for _ in range(warmup):
        result.invoke()
    return result


def interleaved_latencies(files, rounds, runs, warmup=10):
    """{key: median seconds per invocation} for `files`, a {key: (path, delegate)}
    mapping, each timed `runs` times per round over `rounds` rounds, interleaved."""
    interpreters = {
        key: interpreter(path, delegate, warmup=warmup) for key, (path, delegate) in files.items()
    }
    times = {key: [] for key in interpreters}
    keys = list(interpreters)
    for index in range(rounds):
        shift = index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            timed = interpreters[key]
            for _ in range(runs):
                start = time.perf_counter()
                timed.invoke()
                times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}
