"""Filter pruning at scale: FPGM scoring against layer size, and ResNet50 mask/strip times.

- Geometric-median (FPGM) scoring time of one 3x3x512 conv layer against its
  number of filters, 64 up to 2048: the fastest of --fpgm_repeats calls (a
  pure computation, so the minimum is the figure least disturbed by other
  processes; the median is in the JSON too). Timed twice: with the BLAS
  library's default thread count (what users get) and, when `threadpoolctl`
  is installed (it comes with scikit-learn), limited to one BLAS thread. On a
  loaded machine the multi-threaded calls can stall waiting for a busy core,
  so the one-thread column shows the scaling (about quadratic in filters).
- ResNet50 (224x224, ImageNet head, random weights) with filter pruning on
  every conv: `create_compressed_model` time, the time to recompute all masks
  when the compression rate changes (FPGM scores of every group + assignment;
  target < 2 s), and `strip_model` time (target < 20 s).

    python -m examples.benchmarks.scale_benchmark            # ~30 s on 2 cores
    python -m examples.benchmarks.scale_benchmark --fpgm_max_filters=4096

The training-step cost of the masks is measured by `training_cost_benchmark`.
Prints tables and writes JSON to --output.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples.benchmarks._results import write_results  # noqa: E402
from tf_aat.pruning import geometric_median_scores  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("fpgm_max_filters", 2048, "Largest layer scored: 64, 128, ... up to this.")
flags.DEFINE_integer("fpgm_repeats", 5, "FPGM calls per layer size (the fastest is reported).")
flags.DEFINE_integer("resnet50_size", 224, "Input size of ResNet50 for the mask/strip timings.")
flags.DEFINE_string(
    "output", "examples/benchmarks/results/scale.json", "Where to write the JSON results."
)

FPGM_KERNEL = (3, 3, 512)  # kernel height, width, input channels of the scored layer
RECOMPUTE_TARGET_S = 2.0
STRIP_TARGET_S = 20.0


def fpgm_sizes():
    sizes = []
    filters = 64
    while filters <= FLAGS.fpgm_max_filters:
        sizes.append(filters)
        filters *= 2
    return sizes


def _score_times(kernel):
    runs = []
    for _ in range(FLAGS.fpgm_repeats):
        start = time.perf_counter()
        geometric_median_scores(kernel)
        runs.append(time.perf_counter() - start)
    return runs


def blas_threads():
    """Default BLAS thread count, or None without `threadpoolctl`."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    info = threadpoolctl.threadpool_info()
    return max((pool["num_threads"] for pool in info if pool["user_api"] == "blas"), default=None)


def fpgm_scaling():
    """One row per layer size: filters, kernel shape, values per filter and seconds.

    `seconds` is the fastest call with the default BLAS threads, `median_seconds`
    the median of those calls, `single_thread_seconds` the fastest call with one
    BLAS thread (None without `threadpoolctl`).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    rng = np.random.default_rng(0)
    rows = []
    for filters in fpgm_sizes():
        kernel = rng.normal(size=(*FPGM_KERNEL, filters)).astype("float32")
        runs = _score_times(kernel)
        single = None
        if threadpool_limits is not None:
            with threadpool_limits(limits=1, user_api="blas"):
                single = min(_score_times(kernel))
        rows.append(
            {
                "filters": filters,
                "kernel_shape": list(kernel.shape),
                "values_per_filter": int(np.prod(FPGM_KERNEL)),
                "seconds": min(runs),
                "median_seconds": statistics.median(runs),
                "single_thread_seconds": single,
                "repeats": len(runs),
            }
        )
    return rows


def resnet50_timings():
    keras.utils.set_random_seed(0)
    size = FLAGS.resnet50_size
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000)
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "params": {"prune_first_conv": True, "prune_downsample_convs": True},
        }
    }
    start = time.perf_counter()
    ctrl, compressed = tf_aat.create_compressed_model(model, config)
    create_s = time.perf_counter() - start
    mask_times = []
    for rate in (0.3, 0.5, 0.4):
        start = time.perf_counter()
        ctrl.compression_rate = rate
        mask_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    stripped = ctrl.strip_model(compressed)
    strip_s = time.perf_counter() - start
    return {
        "input_size": size,
        "final_rate": ctrl.compression_rate,
        "create_compressed_model_s": create_s,
        "recompute_all_masks_s": statistics.median(mask_times),
        "recompute_target_s": RECOMPUTE_TARGET_S,
        "strip_s": strip_s,
        "strip_target_s": STRIP_TARGET_S,
        "params_full": model.count_params(),
        "params_stripped": stripped.count_params(),
    }


def print_tables(results):
    threads = results["blas_threads"]
    default = f"ms ({threads} thr)" if threads else "ms"
    print(
        f"\nFPGM scoring of one {'x'.join(map(str, FPGM_KERNEL))} layer "
        f"(fastest of {FLAGS.fpgm_repeats} calls; default BLAS threads and one)"
    )
    print(f"  {'filters':>7}  {'kernel shape':<14} {default:>13} {'ms (1 thr)':>11}")
    for row in results["fpgm_scaling"]:
        shape = "x".join(map(str, row["kernel_shape"]))
        single = row["single_thread_seconds"]
        single = f"{1000 * single:.1f}" if single is not None else "n/a"
        print(f"  {row['filters']:>7}  {shape:<14} {1000 * row['seconds']:>13.1f} {single:>11}")
    r50 = results["resnet50"]
    print(f"\nResNet50 ({r50['input_size']}x{r50['input_size']}), filter pruning on every conv")
    print(f"  {'measurement':<28} {'seconds':>8}  target")
    print(f"  {'create_compressed_model':<28} {r50['create_compressed_model_s']:>8.2f}")
    print(
        f"  {'recompute all masks':<28} {r50['recompute_all_masks_s']:>8.2f}  "
        f"< {RECOMPUTE_TARGET_S:g} s "
        f"{'PASS' if r50['recompute_all_masks_s'] < RECOMPUTE_TARGET_S else 'MISS'}"
    )
    print(
        f"  {'strip_model':<28} {r50['strip_s']:>8.2f}  < {STRIP_TARGET_S:g} s "
        f"{'PASS' if r50['strip_s'] < STRIP_TARGET_S else 'MISS'}"
    )
    print(
        f"  parameters at rate {r50['final_rate']:.2f}: {r50['params_full']:,} -> "
        f"{r50['params_stripped']:,} stripped"
    )


def main(argv):
    del argv
    results = {
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "blas_threads": blas_threads(),
    }
    results["fpgm_scaling"] = fpgm_scaling()
    results["resnet50"] = resnet50_timings()
    print_tables(results)
    write_results(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
