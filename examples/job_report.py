"""What the main job (examples/compress.py) writes once its search is done.

`write` evaluates the searched, stripped and exported models and writes
`metrics.json` and `summary.md` into the log directory; `headline` is the few
lines the job prints at the end.
"""

import json
import os
import time

import tf_aat
from examples import tflite_eval, training


def write(
    ctrl,
    compressed,
    model,
    result,
    *,
    train,
    validation,
    test,
    batch_size,
    log_dir,
    export,
    facts,
    started,
):
    """Evaluates and writes the report; returns the metrics (also in metrics.json).

    Every accuracy is on `validation` (the search's validation set); `test` (None
    when the search validated on the test images) gets its own scores under
    "test". `facts` are entries the job knows (dataset, config, baseline...).
    """
    x_train, _ = train
    x_val, y_val = validation
    statistics = ctrl.statistics()
    print(statistics)
    masked_accuracy = training.accuracy(compressed, x_val, y_val, batch_size)
    stripped = ctrl.strip_model(compressed)
    stripped_path = os.path.join(log_dir, "compressed_stripped.keras")
    stripped.save(stripped_path)
    stripped_accuracy = training.accuracy(stripped, x_val, y_val, batch_size)
    facts = dict(facts)
    baseline_path = facts.pop("baseline_path")
    metrics = {
        "dataset": facts.pop("dataset"),
        "model": model.name,
        "config": facts.pop("config"),
        "train_images": len(x_train),
        "validation_images": len(x_val),
        "validation": "held-out training images" if test is not None else "test images",
        **facts,
        "compressed_accuracy": stripped_accuracy,
        "masked_accuracy": masked_accuracy,
        "compression_rate": ctrl.compression_rate,
        "criterion_met": bool(result.criterion_met),
        "accuracy_budget": result.accuracy_budget,
        "epochs": result.epochs,
        "baseline_params": model.count_params(),
        "stripped_params": stripped.count_params(),
        "statistics": statistics.to_dict(),
        "files": {"baseline": baseline_path, "stripped": stripped_path},
    }
    if test is not None:
        metrics["test"] = {
            "baseline_accuracy": training.accuracy(model, test[0], test[1], batch_size),
            "compressed_accuracy": training.accuracy(stripped, test[0], test[1], batch_size),
        }
    pruning = metrics["statistics"]
    pruning = pruning.get("filter_pruning", pruning)
    metrics["flops_reduction"] = pruning.get("flops_reduction")
    if export:
        tflite_path = os.path.join(log_dir, "compressed_int8.tflite")
        float_path = os.path.join(log_dir, "baseline_float.tflite")
        tf_aat.export_tflite(stripped, tflite_path, representative_data=x_train[:256])
        tf_aat.export_tflite(model, float_path, quantize=False)
        metrics["tflite_accuracy"] = tflite_eval.accuracy(tflite_path, x_val, y_val)
        if test is not None:
            metrics["test"]["tflite_accuracy"] = tflite_eval.accuracy(tflite_path, *test)
        metrics["tflite_bytes"] = os.path.getsize(tflite_path)
        metrics["float_tflite_bytes"] = os.path.getsize(float_path)
        metrics["files"]["tflite"] = tflite_path
    metrics["wall_seconds"] = time.time() - started
    with open(os.path.join(log_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, default=str)
    _write_summary(metrics, result, statistics, log_dir)
    return metrics


def headline(m, log_dir):
    """The lines the job prints at the end: where the report is, the headline figures."""
    tflite = f", {m['tflite_accuracy']:.4f} (int8 TFLite)" if "tflite_accuracy" in m else ""
    test = []
    if "test" in m:  # --validation_images: the test images were kept from the search
        t = m["test"]
        test = [
            f"Accuracy on the {m['test_images']:,} test images, unseen by the search: "
            f"{t['baseline_accuracy']:.4f} -> {t['compressed_accuracy']:.4f} (Keras, stripped)"
            + (f", {t['tflite_accuracy']:.4f} (int8 TFLite)" if "tflite_accuracy" in t else "")
        ]
    lines = [
        "",
        f"Report:  {os.path.join(log_dir, 'summary.md')} (metrics.json, search/ beside it)",
        f"Model:   {m['files']['stripped']}"
        + (f" and {m['files']['tflite']}" if "tflite" in m["files"] else ""),
        f"Accuracy on the {m['validation_images']:,} {m['validation']}: "
        f"{m['baseline_accuracy']:.4f} -> {m['masked_accuracy']:.4f} (Keras, as searched), "
        f"{m['compressed_accuracy']:.4f} (Keras, stripped){tflite}",
        *test,
        f"Compression rate: {m['compression_rate']:.4f}; criterion met: {m['criterion_met']}",
        f"FLOPs reduction: {100 * (m['flops_reduction'] or 0):.1f}%; parameters: "
        f"{m['baseline_params']:,} -> {m['stripped_params']:,}",
    ]
    deployed = m.get("tflite_accuracy", m["compressed_accuracy"])
    if m["criterion_met"] and deployed < m["accuracy_budget"]:
        lines.append(
            f"WARNING: the deployed model scores {deployed:.4f}, below the budget "
            f"{m['accuracy_budget']:.4f} the searched model met: stripping and int8 rounding "
            "moved some predictions. Tighten the budget or fine-tune the stripped model."
        )
    if "tflite_bytes" in m:
        lines.append(
            f"TFLite size: {m['float_tflite_bytes']:,} B float -> {m['tflite_bytes']:,} B int8 "
            f"({m['float_tflite_bytes'] / m['tflite_bytes']:.1f}x smaller)"
        )
    return "\n".join(lines)


def _write_summary(metrics, result, statistics, log_dir):
    with open(os.path.join(log_dir, "summary.md"), "w") as f:
        f.write(f"# Compression report: {metrics['model']} on {metrics['dataset']}\n\n")
        f.write("```\n" + headline(metrics, log_dir).strip() + "\n```\n\n")
        f.write("## Search\n\n```\n" + str(result) + "\n```\n\n")
        f.write("## Statistics\n\n```\n" + str(statistics) + "\n```\n")
