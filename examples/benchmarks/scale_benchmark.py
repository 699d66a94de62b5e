"""Cost of filter pruning: training step with masks, mask updates and strip.

Measured side by side in one process (the machine is shared and noisy, so
only ratios measured in the same run are reported):

- ResNet-20 (32x32, batch 128) training-step time, plain Keras 3 vs the same
  model with pruning masks: median over interleaved rounds after warm-up.
- Recomputing all masks of ResNet50 (FPGM scores + assignment), and stripping it.
- Geometric-median scoring time against layer size, up to 2048 filters of 3x3x512.

    python -m examples.benchmarks.pruning_benchmark --output=pruning_benchmark.json
"""

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import models  # noqa: E402
from tf_aat.pruning._importance import geometric_median_scores  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Training batch size for the step-time comparison.")
flags.DEFINE_integer("rounds", 7, "Interleaved timing rounds (the median is reported).")
flags.DEFINE_integer("steps", 5, "Training steps per round and model.")
flags.DEFINE_float("rate", 0.5, "Pruning rate of the masked model.")
flags.DEFINE_integer("resnet50_size", 224, "Input size of ResNet50 for the mask/strip timings.")
flags.DEFINE_bool("scale", True, "Also time FPGM scoring against layer size.")
flags.DEFINE_string("output", "pruning_benchmark.json", "Where to write the JSON results.")


def _train_step_fn(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.make_train_function()
    return model.train_function


def step_time_ratio():
    keras.utils.set_random_seed(0)
    plain = models.resnet20()
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "pruning_init": FLAGS.rate,
            "params": {"prune_first_conv": True, "prune_downsample_convs": True},
        }
    }
    _, masked = tf_aat.create_compressed_model(plain, config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(FLAGS.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, FLAGS.batch_size)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    runners = {}
    for name, model in (("plain", plain), ("masked", masked)):
        fn = _train_step_fn(model)
        iterator = iter(data)
        for _ in range(3):  # warm-up, including tracing
            fn(iterator)
        runners[name] = (fn, iterator)
    times = {name: [] for name in runners}
    for _ in range(FLAGS.rounds):
        for name, (fn, iterator) in runners.items():
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                logs = fn(iterator)
            keras.ops.convert_to_numpy(logs["loss"])
            times[name].append((time.perf_counter() - start) / FLAGS.steps)
    plain_s = statistics.median(times["plain"])
    masked_s = statistics.median(times["masked"])
    return {
        "plain_step_s": plain_s,
        "masked_step_s": masked_s,
        "masked_over_plain": masked_s / plain_s,
        "target": 1.10,
    }


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
        "create_compressed_model_s": create_s,
        "recompute_all_masks_s": statistics.median(mask_times),
        "recompute_target_s": 2.0,
        "strip_s": strip_s,
        "strip_target_s": 20.0,
        "params_full": model.count_params(),
        "params_stripped": stripped.count_params(),
    }


def fpgm_scaling():
    rng = np.random.default_rng(0)
    rows = []
    for filters in (64, 128, 256, 512, 1024, 2048):
        kernel = rng.normal(size=(3, 3, 512, filters)).astype("float32")
        start = time.perf_counter()
        geometric_median_scores(kernel)
        rows.append(
            {
                "filters": filters,
                "values_per_filter": 3 * 3 * 512,
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def main(argv):
    del argv
    results = {"device": "cpu", "tensorflow": tf.__version__, "keras": keras.__version__}
    results["resnet20_step"] = step_time_ratio()
    step = results["resnet20_step"]
    print(
        f"ResNet-20 train step, batch {FLAGS.batch_size}: plain {step['plain_step_s'] * 1e3:.1f} ms, "
        f"with masks {step['masked_step_s'] * 1e3:.1f} ms -> {step['masked_over_plain']:.3f}x "
        f"(target <= {step['target']:.2f}x)"
    )
    results["resnet50"] = resnet50_timings()
    r50 = results["resnet50"]
    print(
        f"ResNet50 ({FLAGS.resnet50_size}px): recompute all masks {r50['recompute_all_masks_s']:.2f} s "
        f"(target < 2 s), strip {r50['strip_s']:.2f} s (target < 20 s), "
        f"create {r50['create_compressed_model_s']:.2f} s"
    )
    if FLAGS.scale:
        results["fpgm_scaling"] = fpgm_scaling()
        print("FPGM scoring of one 3x3x512 layer:")
        for row in results["fpgm_scaling"]:
            print(f"  {row['filters']:5d} filters: {row['seconds'] * 1e3:8.1f} ms")
    with open(FLAGS.output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
