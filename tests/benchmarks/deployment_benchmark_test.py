"""The deployment benchmark end to end on a tiny CIFAR-10-format archive."""

import json
import os

import keras
import numpy as np
import pytest

import tf_aat
from tests.scripts import run_module, run_script

pytest.importorskip("absl")

TINY = (
    "--baseline_epochs=1",
    "--prune_epochs=2",
    "--pruning_steps=2",
    "--qat_epochs=1",
    "--batch_size=64",
    "--latency_rounds=1",
    "--latency_runs=3",
    "--calibration_images=64",
    "--verbose=0",
)


def _hide_ai_edge_quantizer(tmp_path, monkeypatch):
    """Makes `import ai_edge_quantizer` fail in the scripts run from now on."""
    shim = tmp_path / "shim" / "ai_edge_quantizer"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    paths = [str(shim.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))


def test_six_tflite_models_are_measured_and_a_rerun_reuses_the_cache(
    tmp_path, cifar10_archive, monkeypatch
):
    work, output = tmp_path / "work", tmp_path / "deployment.json"
    flags = (f"--cifar10_path={cifar10_archive}", f"--work_dir={work}", f"--output={output}")
    out = run_module("examples.benchmarks.deployment_benchmark", *flags, *TINY)
    assert "Pruning to 50% fewer FLOPs" in out and "pruned_int8 vs fp32" in out
    results = json.loads(output.read_text())
    rows = results["rows"]
    assert list(rows) == ["fp32", "pruned", "int8", "pruned_int8", "int8_ptq", "int8_ai_edge"]
    assert results["test_images"] == 64
    for name, row in rows.items():
        assert 0.0 <= row["tflite_accuracy"] <= 1.0
        assert 0.0 <= row["agreement_with_fp32"] <= 1.0
        assert (
            row["latency_ms"] > 0 and row["size_bytes"] == (work / f"{name}.tflite").stat().st_size
        )
        assert row["speedup"] == pytest.approx(rows["fp32"]["latency_ms"] / row["latency_ms"])
    # Pruning removed filters: about half the MACs (the FLOPs target), fewer parameters.
    assert rows["pruned"]["macs_ratio"] == pytest.approx(0.5, abs=0.08)
    assert rows["pruned"]["params"] < rows["fp32"]["params"]
    assert rows["pruned"]["size_bytes"] < rows["fp32"]["size_bytes"]
    # The int8 files compute in int8 (QAT and both post-training quantizers), the fp32
    # ones in float; the fp32 file is the Keras baseline, prediction for prediction.
    assert rows["fp32"]["agreement_with_fp32"] == 1.0
    for name in ("int8", "pruned_int8", "int8_ptq", "int8_ai_edge"):
        ops = tf_aat.tflite_ops((work / f"{name}.tflite").read_bytes())
        convs = [op for op in ops if op.op in ("CONV_2D", "FULLY_CONNECTED")]
        assert len(convs) == 22 and all(op.is_int8 for op in convs), name
        assert rows[name]["size_bytes"] < rows["fp32"]["size_bytes"] / 3
    assert rows["pruned_int8"]["size_bytes"] < rows["pruned"]["size_bytes"] / 3
    # AI Edge Quantizer's file takes and gives int8 (no QUANTIZE/DEQUANTIZE at its ends).
    from ai_edge_litert.interpreter import Interpreter

    ai_edge = Interpreter(model_path=str(work / "int8_ai_edge.tflite"))
    assert ai_edge.get_input_details()[0]["dtype"] == np.int8
    assert ai_edge.get_output_details()[0]["dtype"] == np.int8
    assert set(results["qat_vs_ptq"]) == {"int8_ptq", "int8_ai_edge"}
    for versus in results["qat_vs_ptq"].values():
        only = versus["qat_only_correct"] - versus["ptq_only_correct"]
        assert versus["points"] == pytest.approx(100 * only / 64)
    assert set(results["targets_met"]) == {"speedup", "size_reduction", "accuracy_drop_points"}
    assert results["skipped"] == {}

    # A rerun (e.g. after a crash) trains and quantizes nothing again; without
    # ai-edge-quantizer installed its row is left out, and the results say why.
    _hide_ai_edge_quantizer(tmp_path, monkeypatch)
    out = run_module("examples.benchmarks.deployment_benchmark", *flags, *TINY)
    assert "Loading the cached baseline" in out
    assert "Pruning to" not in out and "QAT fine-tuning" not in out
    assert "Post-training quantization" not in out
    results = json.loads(output.read_text())
    assert "int8_ai_edge" not in results["rows"] and len(results["rows"]) == 5
    assert "pip install ai-edge-quantizer" in results["skipped"]["int8_ai_edge"]
    assert "int8_ai_edge left out: ai-edge-quantizer is not installed" in out

    # The default recipe distils from the baseline and prunes only the channels
    # inside the residual blocks (the first conv of each block, strided ones
    # included): the stem, the shortcuts and the residual widths are kept.
    assert results["flags"]["distill"] is True
    widths = _conv_widths(work / "pruned.keras")
    full = _conv_widths(work / "baseline.keras")
    inner = {name for name in full if name.endswith("_a_conv")}
    assert len(inner) == 9
    assert all(widths[name] < full[name] for name in inner)
    assert all(widths[name] == full[name] for name in set(full) - inner)


@pytest.mark.slow
def test_other_recipes_redo_only_the_stages_they_change(tmp_path, cifar10_archive):
    # Three more runs of the script (about 3 minutes on 2 cores): kept out of the default suite.
    work, output = tmp_path / "work", tmp_path / "deployment.json"
    flags = (f"--cifar10_path={cifar10_archive}", f"--work_dir={work}", f"--output={output}")
    run_module("examples.benchmarks.deployment_benchmark", *flags, *TINY)
    full = _conv_widths(work / "baseline.keras")

    # Another FLOPs target redoes the pruned stages only, not the baseline's int8 one.
    out = run_module(
        "examples.benchmarks.deployment_benchmark", *flags, *TINY, "--flops_target=0.4"
    )
    assert "Pruning to 40% fewer FLOPs" in out and out.count("QAT fine-tuning") == 1
    rows = json.loads(output.read_text())["rows"]
    assert rows["pruned"]["macs_ratio"] == pytest.approx(0.6, abs=0.08)
    assert json.loads(output.read_text())["baseline"]["trained_here"] is False

    # Without distillation, every conv pruned: all three fine-tunes are redone
    # (the teacher went away), the residual groups lose channels too.
    out = run_module(
        "examples.benchmarks.deployment_benchmark",
        *flags,
        *TINY,
        "--nodistill",
        "--prune_first_conv",
        "--ignored_scopes=",
    )
    assert "Pruning to 50% fewer FLOPs" in out and out.count("QAT fine-tuning") == 2
    results = json.loads(output.read_text())
    assert results["flags"]["distill"] is False
    widths = _conv_widths(work / "pruned.keras")
    assert all(widths[name] < full[name] for name in full)
    assert results["rows"]["pruned"]["macs_ratio"] == pytest.approx(0.5, abs=0.08)


def test_an_unknown_variant_is_refused_before_anything_is_trained(tmp_path, cifar10_archive):
    work, output = tmp_path / "work", tmp_path / "ptq.json"
    flags = (f"--cifar10_path={cifar10_archive}", f"--work_dir={work}", f"--output={output}")
    result = run_script(
        "examples.benchmarks.deployment_benchmark", *flags, *TINY, "--variants=int8,int8_qat"
    )
    assert result.returncode != 0
    assert "--variants takes names from fp32, pruned" in result.stderr
    assert "(unknown: int8_qat)" in result.stderr
    assert not work.exists() and not output.exists()


@pytest.mark.slow
def test_the_post_training_rows_alone_train_no_pruned_or_qat_model(tmp_path, cifar10_archive):
    work, output = tmp_path / "work", tmp_path / "ptq.json"
    flags = (f"--cifar10_path={cifar10_archive}", f"--work_dir={work}", f"--output={output}")

    out = run_module(
        "examples.benchmarks.deployment_benchmark",
        *flags,
        *TINY,
        "--variants=int8_ptq,int8_ai_edge",
        "--calibration_images=32",
    )
    assert "Pruning to" not in out and "QAT fine-tuning" not in out
    assert out.count("Post-training quantization") == 2 and "on 32 calibration images" in out
    results = json.loads(output.read_text())
    assert list(results["rows"]) == ["fp32", "int8_ptq", "int8_ai_edge"]
    assert "targets_met" not in results and "qat_vs_ptq" not in results
    assert not (work / "pruned.keras").exists()

    # The cached baseline is a ResNet-20: another architecture in the same work_dir
    # is refused, rather than measured on the wrong model.
    result = run_script(
        "examples.benchmarks.deployment_benchmark", *flags, *TINY, "--model=mobilenet_v2"
    )
    assert result.returncode != 0
    assert "is a resnet20, but --model=mobilenet_v2 builds a mobilenet_v2_small" in result.stderr


def _conv_widths(path):
    model = keras.models.load_model(path)
    return {
        layer.name: layer.filters
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    }
