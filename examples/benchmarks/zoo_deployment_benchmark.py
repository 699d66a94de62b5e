"""Deployment of the keras.applications zoo: pruning + int8 QAT, stripped, exported to TFLite.

Every family with its *default* classifier head (softmax), random weights and
a small input: filter pruning at 0.3 plus int8 quantization
(`create_compressed_model` with calibration images), `strip_model`, and
`export_tflite`. Per architecture it records whether creation or export
refused (and why), the stripped-vs-searched relative L2 error of the Keras
outputs (target <= 1e-3: strip changes no quantized value), the TFLite-vs-
Keras relative L2 error (target <= 5%; LiteRT's default interpreter, whose
XNNPACK delegate runs the int8 ops) and top-1 agreement, the float heavy
ops left in the file (target: none) and the file size. Beside it, the floor
no emulation can go under: the same file on TFLite's builtin kernels
(`tflite_builtin_error`, vs Keras) and how far the two runtimes are apart
(`runtimes_error`); their fixed-point and float requantizations round a
value near a boundary differently, and a deep residual net on random
weights amplifies each such one-step difference.

Images are uniform noise in [0, 255] passed through the family's own
`preprocess_input`, so activations have the scale the architecture expects;
weights initialised to a constant are randomized first, as in
`coverage_benchmark`.

    python -m examples.benchmarks.zoo_deployment_benchmark     # ~20 min on 2 cores
    python -m examples.benchmarks.zoo_deployment_benchmark --models=MobileNetV2

Prints a line per architecture and writes JSON to --output.
"""

import os
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

import tf_aat  # noqa: E402
from examples.benchmarks._results import write_results  # noqa: E402
from examples.benchmarks._timing import BUILTIN, interpreter  # noqa: E402
from examples.benchmarks._zoo import FAMILIES, randomize_constants  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(FAMILIES), "keras.applications architectures to run.")
flags.DEFINE_float("rate", 0.3, "Filter pruning rate.")
flags.DEFINE_integer("classes", 10, "Classifier outputs.")
flags.DEFINE_integer("calibration", 32, "Images for range initialisation and BN adaptation.")
flags.DEFINE_integer("verify", 16, "Images compared between Keras and TFLite.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and images.")
flags.DEFINE_string(
    "output",
    "examples/benchmarks/results/zoo_deployment.json",
    "Where to write the JSON results.",
)

STRIP_TARGET = 1e-3
TFLITE_TARGET = 0.05
# keras.applications module of each family, for its preprocess_input.
MODULES = {
    "ConvNeXt": "convnext",
    "DenseNet": "densenet",
    "EfficientNetV2": "efficientnet_v2",
    "EfficientNet": "efficientnet",
    "InceptionResNetV2": "inception_resnet_v2",
    "InceptionV3": "inception_v3",
    "MobileNetV3": "mobilenet_v3",
    "MobileNetV2": "mobilenet_v2",
    "MobileNet": "mobilenet",
    "NASNet": "nasnet",
    "ResNet50V2": "resnet_v2",
    "ResNet": "resnet",
    "VGG16": "vgg16",
    "Xception": "xception",
}


def preprocess(name, images):
    for prefix, module in MODULES.items():
        if name.startswith(prefix):
            return getattr(keras.applications, module).preprocess_input(images.copy())
    return images


def _relative(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def _run(interpreter, images):
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    outputs = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0].astype("float32"))
    return np.stack(outputs)


def measure(name, size, work_dir):
    keras.utils.set_random_seed(FLAGS.seed)
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3), classes=FLAGS.classes
    )
    randomize_constants(model, FLAGS.seed)
    rng = np.random.default_rng(FLAGS.seed)
    raw = rng.uniform(0, 255, (FLAGS.calibration + FLAGS.verify, size, size, 3))
    images = preprocess(name, raw.astype("float32")).astype("float32")
    calibration, verify = images[: FLAGS.calibration], images[FLAGS.calibration :]
    config = {
        "compression": [
            {
                "algorithm": "filter_pruning",
                "pruning_init": FLAGS.rate,
                "params": {"prune_first_conv": True, "prune_downsample_convs": True},
            },
            {
                "algorithm": "quantization",
                "initializer": {
                    "range": {"num_init_samples": FLAGS.calibration},
                    "batchnorm_adaptation": {"num_bn_adaptation_samples": FLAGS.calibration},
                },
            },
        ]
    }
    row = {"model": name, "input_size": size, "stage": "create_compressed_model"}
    start = time.perf_counter()
    ctrl, compressed = tf_aat.create_compressed_model(model, config, init_data=calibration)
    row["create_seconds"] = time.perf_counter() - start
    row["stage"] = "strip"
    stripped = ctrl.strip_model(compressed)
    searched = np.asarray(compressed(verify, training=False))
    deployed = np.asarray(stripped(verify, training=False))
    row["strip_error"] = _relative(deployed, searched)
    row["parameters_before"] = int(model.count_params())
    row["parameters_after"] = int(stripped.count_params())
    row["stage"] = "export_tflite"
    path = os.path.join(work_dir, f"{name}.tflite")
    start = time.perf_counter()
    report = tf_aat.export_tflite(
        stripped, path, require_int8=False, verify_data=verify, raise_on_mismatch=False
    )
    row["export_seconds"] = time.perf_counter() - start
    row["size_bytes"] = report.size_bytes
    row["float_heavy_ops"] = sorted({op.op for op in report.float_ops})
    tflite = _run(Interpreter(model_path=path), verify)
    row["tflite_error"] = _relative(tflite, deployed)
    # The floor: the same file on TFLite's builtin kernels, whose fixed-point
    # requantization rounds a value near a boundary differently from XNNPACK's.
    builtin = _run(interpreter(path, BUILTIN, threads=None, warmup=0), verify)
    row["tflite_builtin_error"] = _relative(builtin, deployed)
    row["runtimes_error"] = _relative(tflite, builtin)
    row["top1_agreement"] = float(np.mean(tflite.argmax(-1) == deployed.argmax(-1)))
    row["output_max_probability"] = float(deployed.max(-1).mean())
    row["ok"] = True
    row["deployed"] = (
        row["strip_error"] <= STRIP_TARGET
        and row["tflite_error"] <= TFLITE_TARGET
        and not row["float_heavy_ops"]
    )
    row["stage"] = "done"
    return row


def main(argv):
    del argv
    unknown = [m for m in FLAGS.models if not hasattr(keras.applications, m)]
    if unknown:
        raise app.UsageError(
            f"Expected keras.applications architectures. Received unknown: {unknown}"
        )
    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        for name in FLAGS.models:
            size = FAMILIES.get(name, 32)
            try:
                row = measure(name, size, work_dir)
            except Exception as error:  # noqa: BLE001 - a refusal is a result here
                traceback.print_exc()
                row = {
                    "model": name,
                    "input_size": size,
                    "ok": False,
                    "deployed": False,
                    "error": f"{type(error).__name__}: {str(error)[:300]}",
                }
            rows.append(row)
            if row["ok"]:
                print(
                    f"{name:<18} strip {row['strip_error']:.1e}  tflite {row['tflite_error']:.2%}"
                    f"  (builtin kernels {row['tflite_builtin_error']:.2%},"
                    f" runtimes apart {row['runtimes_error']:.2%})"
                    f"  top-1 {row['top1_agreement']:.0%}  float ops {row['float_heavy_ops']}"
                    f"  {row['size_bytes'] / 1e6:.2f} MB",
                    flush=True,
                )
            else:
                print(f"{name:<18} REFUSED/FAILED: {row['error']}", flush=True)
            keras.backend.clear_session()
    summary = {
        "rate": FLAGS.rate,
        "strip_target": STRIP_TARGET,
        "tflite_target": TFLITE_TARGET,
        "families": len(rows),
        "deployed": sum(1 for r in rows if r["deployed"]),
        "refused": [r["model"] for r in rows if not r["ok"]],
        "target_met": all(r["deployed"] for r in rows),
    }
    print(
        f"\n{summary['deployed']} of {summary['families']} families deployed (all heavy ops "
        f"int8, strip error <= {STRIP_TARGET:g}, TFLite error <= {TFLITE_TARGET:.0%})"
    )
    write_results(FLAGS.output, {"summary": summary, "models": rows})


if __name__ == "__main__":
    app.run(main)
