"""Training-step cost with oneDNN on and off: ResNet-20, side by side in one run.

TensorFlow picks its CPU kernels when it is imported: oneDNN's
(`TF_ENABLE_ONEDNN_OPTS=1`, the default only on CPUs with AVX-512 VNNI or AMX)
or its own Eigen kernels (`TF_ENABLE_ONEDNN_OPTS=0`, the default elsewhere). So
this script starts two worker processes, one per mode, each building the same
seeded models (plain Keras 3 ResNet-20 and its tf_aat QAT model, batch 128,
32x32x3) and tracing their training steps. It then runs the timing rounds
alternately, one process at a time so that the two never compete for the
cores: a round of one process is --steps training steps of each model
(interleaved step by step), and the order of the two processes alternates
every round, so load that comes and goes hits both modes alike. The figure
per mode and model is the median of its --rounds x --steps step times; the
result is the ratio off / on measured in the same run.

    python -m examples.benchmarks.onednn_benchmark                  # ~3 min on 2 cores
    python -m examples.benchmarks.onednn_benchmark --rounds=9 --steps=5

Prints a table and writes JSON to --output.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps per model before timing (tracing).")
flags.DEFINE_integer("rounds", 6, "Timing rounds per mode, the two modes alternating.")
flags.DEFINE_integer("steps", 3, "Timed steps per model per round, interleaved step by step.")
flags.DEFINE_list("models", ["keras3_float", "tf_aat_qat"], "Models to time (see MODELS).")
flags.DEFINE_string(
    "output", "examples/benchmarks/results/onednn.json", "Where to write the JSON results."
)
flags.DEFINE_enum("worker", None, ["0", "1"], "Internal: run as the worker of this oneDNN mode.")

MODES = ("0", "1")  # TF_ENABLE_ONEDNN_OPTS values: off, on
MODELS = ("keras3_float", "tf_aat_qat")
CLASSES = 10
INPUT_SHAPE = (32, 32, 3)
ROOT = pathlib.Path(__file__).resolve().parents[2]
PREFIX = "@@"  # marks the worker's protocol lines among anything else on its stdout


# --- worker: one process per oneDNN mode -----------------------------------------------


def _send(message):
    print(PREFIX + json.dumps(message), flush=True)


def _build(names, batch_size):
    import keras
    import numpy as np
    import tensorflow as tf

    import tf_aat
    from examples import models

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch_size, *INPUT_SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, batch_size)
    keras.utils.set_random_seed(0)
    float_model = models.resnet20(INPUT_SHAPE, CLASSES)
    built = {}
    for name in names:
        if name == "keras3_float":
            model = float_model
        else:
            config = {
                "compression": {
                    "algorithm": "quantization",
                    "initializer": {"range": {"num_init_samples": batch_size}},
                }
            }
            _, model = tf_aat.create_compressed_model(float_model, config, init_data=x)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.make_train_function()
        built[name] = (model.train_function, iter(tf.data.Dataset.from_tensors((x, y)).repeat()))
    return built


def run_worker(mode):
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    runners = _build(FLAGS.models, FLAGS.batch_size)
    for fn, iterator in runners.values():
        for _ in range(FLAGS.warmup_steps):
            float(fn(iterator)["loss"])
    _send(
        {
            "ready": True,
            "mode": mode,
            "onednn_enabled": bool(_pywrap_util_port.IsMklEnabled()),
            "tensorflow": tf.__version__,
        }
    )
    names = list(runners)
    index = 0
    for line in sys.stdin:
        if line.strip() != "round":
            break
        times = {name: [] for name in names}
        for _ in range(FLAGS.steps):
            shift = index % len(names)
            index += 1
            for name in names[shift:] + names[:shift]:
                fn, iterator = runners[name]
                start = time.perf_counter()
                float(fn(iterator)["loss"])  # waits for the step to finish
                times[name].append(time.perf_counter() - start)
        _send({"times": times})


# --- parent: starts the two workers and alternates their rounds ----------------------


def _receive(process):
    for line in process.stdout:
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX) :])
    raise RuntimeError(
        f"The oneDNN benchmark worker exited (code {process.wait()}) before answering; "
        "its error is printed above."
    )


def _start_worker(mode):
    argv = [
        sys.executable,
        "-m",
        "examples.benchmarks.onednn_benchmark",
        f"--worker={mode}",
        f"--batch_size={FLAGS.batch_size}",
        f"--warmup_steps={FLAGS.warmup_steps}",
        f"--steps={FLAGS.steps}",
        f"--models={','.join(FLAGS.models)}",
    ]
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=mode)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def measure():
    """mode -> worker info, and mode -> model -> every timed step's seconds."""
    workers = {mode: _start_worker(mode) for mode in MODES}
    try:
        info = {mode: _receive(process) for mode, process in workers.items()}
        per_step = {mode: {name: [] for name in FLAGS.models} for mode in MODES}
        for index in range(FLAGS.rounds):
            order = MODES if index % 2 == 0 else MODES[::-1]
            for mode in order:
                workers[mode].stdin.write("round\n")
                workers[mode].stdin.flush()
                for name, seconds in _receive(workers[mode])["times"].items():
                    per_step[mode][name].extend(seconds)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.stdin.close()
                process.wait(timeout=60)
    return info, per_step


def summarize(info, per_step):
    step_times = {
        mode: {name: statistics.median(seconds) for name, seconds in models.items()}
        for mode, models in per_step.items()
    }
    off, on = step_times["0"], step_times["1"]
    return {
        "tensorflow": info["1"]["tensorflow"],
        "onednn_enabled": {mode: info[mode]["onednn_enabled"] for mode in MODES},
        "cpu_count": os.cpu_count(),
        "model": "resnet20",
        "input_shape": list(INPUT_SHAPE),
        "batch_size": FLAGS.batch_size,
        "warmup_steps": FLAGS.warmup_steps,
        "rounds": FLAGS.rounds,
        "steps": FLAGS.steps,
        "train_step_seconds": {"onednn_off": off, "onednn_on": on},
        # How much longer a step takes with oneDNN off: what oneDNN gains.
        "off_over_on": {name: off[name] / on[name] for name in FLAGS.models},
        "per_step_seconds": {"onednn_off": per_step["0"], "onednn_on": per_step["1"]},
    }


def print_table(results):
    print(
        f"\nResNet-20 training step (32x32, batch {results['batch_size']}, median of "
        f"{results['rounds']} x {results['steps']} steps per mode, modes alternating)"
    )
    rows = [("model", "oneDNN off ms", "oneDNN on ms", "off / on")]
    for name, ratio in results["off_over_on"].items():
        off = results["train_step_seconds"]["onednn_off"][name]
        on = results["train_step_seconds"]["onednn_on"][name]
        rows.append((name, f"{1000 * off:.1f}", f"{1000 * on:.1f}", f"{ratio:.2f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.models) - set(MODELS))
    if unknown:
        raise app.UsageError(f"Expected --models from {list(MODELS)}. Received: {unknown}")
    if FLAGS.worker is not None:
        run_worker(FLAGS.worker)
        return
    from examples.benchmarks._results import write_results

    results = summarize(*measure())
    print_table(results)
    write_results(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
