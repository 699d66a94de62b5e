"""What magnitude sparsity gives an int8 TFLite model: file size and LiteRT latency.

ResNet-20 (32x32x3, random weights: sizes and speed do not depend on what the
weights learned) with NNCF's `magnitude_sparsity` at each --levels value (every kernel at the
level: --mode=local) plus
8-bit quantization, stripped and exported twice with `tf_aat.export_tflite`:
with dense weights and with `sparse_weights=True` (the converter's
`EXPERIMENTAL_SPARSITY` encoding, expanded by a DENSIFY op when the interpreter
prepares the model). Each file is checked against the Keras model
(`verify_data`), its size read from disk, and its batch-1 latency measured with
LiteRT on one thread, with the default XNNPACK delegate and with TFLite's
builtin kernels only, all files timed interleaved in one process (ratios are
what to read; this machine is shared). Where XNNPACK cannot prepare a
sparse-encoded file (`TFLiteExport.delegate_error`), the row says so and the
builtin kernels are timed.

    python -m examples.benchmarks.sparsity_deployment_benchmark     # ~3 min on 2 cores
    python -m examples.benchmarks.sparsity_deployment_benchmark --levels=0.5,0.9 --runs=50

Prints a table and writes JSON to --output. Which level keeps accuracy within a
budget is the search's job (README "Sparsity"); this measures what a level buys
once found.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tf_aat  # noqa: E402
from examples import models  # noqa: E402
from examples.benchmarks._results import write_results  # noqa: E402
from examples.benchmarks._sparsity import zero_fraction  # noqa: E402
from examples.benchmarks._timing import BUILTIN, XNNPACK, interleaved_latencies  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("levels", ["0", "0.5", "0.7", "0.8", "0.9", "0.95"], "Sparsity levels.")
flags.DEFINE_enum(
    "mode",
    "local",
    ["local", "global"],
    "sparsity_level_setting_mode: local gives every kernel the level; global (NNCF's default) "
    "ranks all weights together, and on random weights zeroes the largest kernels entirely "
    "(the converter then folds those convolutions away).",
)
flags.DEFINE_integer("rounds", 5, "Timing rounds (every file timed in each round, in turn).")
flags.DEFINE_integer("runs", 40, "Invocations per file per round.")
flags.DEFINE_integer("samples", 64, "Random inputs for range initialisation and verification.")
flags.DEFINE_string(
    "output",
    "examples/benchmarks/results/sparsity_deployment.json",
    "Where to write the JSON results.",
)

INPUT_SHAPE = (32, 32, 3)


def config(level):
    compression = [{"algorithm": "quantization"}]
    if level > 0:
        sparsity = {
            "algorithm": "magnitude_sparsity",
            "sparsity_init": level,
            "params": {"sparsity_level_setting_mode": FLAGS.mode},
        }
        compression.insert(0, sparsity)
    return {"compression": compression}


def export_level(float_model, level, x, directory):
    """{encoding: (path, TFLiteExport)} and the stripped model's zero fraction."""
    _, compressed = tf_aat.create_compressed_model(float_model, config(level), init_data=x)
    stripped = tf_aat.strip_model(compressed)
    files = {}
    for encoding, sparse in (("dense", False), ("sparse", True)):
        path = os.path.join(directory, f"level_{level:g}_{encoding}.tflite")
        report = tf_aat.export_tflite(
            stripped, path, verify_data=x, batch_size=1, sparse_weights=sparse
        )
        files[encoding] = (path, report)
    return files, zero_fraction(stripped)


def latencies(paths, without_xnnpack=()):
    """{(name, delegate): median seconds per invocation}, timed interleaved.

    Files in `without_xnnpack` (the delegate cannot prepare them) are timed
    with the builtin kernels only."""
    files = {
        (name, delegate): (path, delegate)
        for name, path in paths.items()
        for delegate in (XNNPACK, BUILTIN)
        if not (delegate == XNNPACK and name in without_xnnpack)
    }
    return interleaved_latencies(files, FLAGS.rounds, FLAGS.runs)


def main(argv):
    del argv
    levels = [float(level) for level in FLAGS.levels]
    keras.utils.set_random_seed(0)
    float_model = models.resnet20(INPUT_SHAPE, 10)
    x = np.random.default_rng(0).uniform(0, 1, (FLAGS.samples, *INPUT_SHAPE)).astype("float32")
    rows, paths = [], {}
    with tempfile.TemporaryDirectory() as directory:
        for level in levels:
            files, zeros = export_level(float_model, level, x, directory)
            for encoding, (path, report) in files.items():
                name = f"{level:g}/{encoding}"
                paths[name] = path
                rows.append(
                    {
                        "name": name,
                        "level": level,
                        "zero_fraction": zeros,
                        "encoding": encoding,
                        "size_bytes": report.size_bytes,
                        "int8": not report.float_ops,
                        "densify_op": any(op.op == "DENSIFY" for op in report.ops),
                        "verification": report.verification,
                        "xnnpack_error": report.delegate_error,
                    }
                )
        timed = latencies(paths, {row["name"] for row in rows if row["xnnpack_error"]})
    dense0 = next(row for row in rows if row["level"] == levels[0] and row["encoding"] == "dense")
    for row in rows:
        for delegate in (XNNPACK, BUILTIN):
            seconds = timed.get((row["name"], delegate))
            row[f"latency_ms_{delegate}"] = None if seconds is None else 1000 * seconds
        row["size_vs_first_dense"] = row["size_bytes"] / dense0["size_bytes"]
    for row in rows:
        # The default interpreter's speed against the first level's dense file
        # (builtin kernels where XNNPACK cannot prepare the file).
        fastest = row["latency_ms_xnnpack"] or row["latency_ms_builtin"]
        row["speedup_vs_first_dense"] = dense0["latency_ms_xnnpack"] / fastest
    results = {
        "model": "resnet20",
        "input_shape": list(INPUT_SHAPE),
        "weights": "random (seed 0)",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "levels": levels,
        "mode": FLAGS.mode,
        "rounds": FLAGS.rounds,
        "runs": FLAGS.runs,
        "rows": rows,
    }
    header = "level  zeros  encoding  bytes     vs dense  XNNPACK ms  builtin ms  speed-up  agree"

    def ms(value):
        return f"{value:10.3f}" if value is not None else f"{'fails':>10}"

    print(f"\nResNet-20 int8, batch 1, one thread, median of {FLAGS.rounds} x {FLAGS.runs}\n")
    print(header)
    for row in rows:
        agree = row["verification"]["argmax_agreement"]
        print(
            f"{row['level']:<6g} {row['zero_fraction']:5.3f}  {row['encoding']:<8}  "
            f"{row['size_bytes']:<8d}  {row['size_vs_first_dense']:7.3f}x  "
            f"{ms(row['latency_ms_xnnpack'])}  {ms(row['latency_ms_builtin'])}  "
            f"{row['speedup_vs_first_dense']:7.3f}x  {agree:.3f}"
        )
    write_results(FLAGS.output, results)


if __name__ == "__main__":
    app.run(main)
