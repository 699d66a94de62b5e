"""The README's results section is rendered from the committed benchmark JSON."""

import json
import shutil

import pytest

from tests.scripts import ROOT, run_module, run_script

RESULTS = ROOT / "examples" / "benchmarks" / "results"


def test_readme_results_are_rendered_from_the_committed_json():
    out = run_module("examples.benchmarks.report", "--check")
    assert "up to date" in out


def test_every_figure_comes_from_the_json(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:begin -->\nstale\n<!-- results:end -->\nafter\n")
    results = tmp_path / "results"
    results.mkdir()
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
    text = readme.read_text()
    assert "stale" not in text and text.endswith("<!-- results:end -->\nafter\n")
    assert text.count("Not measured yet") == 12  # one per section, each with its command
    assert "python -m examples.benchmarks.deployment_benchmark" in text

    shutil.copy(RESULTS / "deployment.json", results / "deployment.json")
    deployment = json.loads((results / "deployment.json").read_text())
    deployment["rows"]["pruned_int8"]["latency_ms"] = 0.123456
    (results / "deployment.json").write_text(json.dumps(deployment))
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
    text = readme.read_text()
    assert text.count("Not measured yet") == 11
    assert "| pruned_int8 |" in text and "0.123 ms" in text
    assert "Other recipes" not in text

    # Runs with other recipes get one comparison row each, with their flags.
    shutil.copy(RESULTS / "deployment_every_conv.json", results / "deployment_every_conv.json")
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
    text = readme.read_text()
    assert "Other recipes" in text and "| every conv, labels only |" in text
    # Its flags predate --distill and the scope flags: they ran with what are now these values.
    assert "`--prune_epochs=15 --prune_first_conv --ignored_scopes= --nodistill`" in text


def _ptq_run(skip_ai_edge=False):
    """A deployment_ptq.json as the benchmark writes it (figures made up)."""
    rows = {
        "fp32": (0.8346, 1.0, 1077, 0.80),
        "int8": (0.8340, 0.985, 315, 0.23),
        "int8_ptq": (0.8312, 0.978, 304, 0.23),
        "int8_ai_edge": (0.8305, 0.975, 304, 0.22),
    }
    if skip_ai_edge:
        del rows["int8_ai_edge"]
    flags = {
        "qat_epochs": 1,
        "distill": True,
        "distillation_temperature": 4.0,
        "latency_rounds": 5,
        "latency_runs": 100,
    }
    return {
        "test_images": 10000,
        "calibration_images": 512,
        "flags": flags,
        "ai_edge_quantizer": "0.10.0",
        "baseline": {
            "path": "runs/deployment_ptq/baseline.keras",
            "trained_here": False,
            "recipe": {"epochs": 15, "train_images": 50000},
        },
        "rows": {
            name: {
                "tflite_accuracy": accuracy,
                "agreement_with_fp32": agreement,
                "size_bytes": kb * 1024,
                "latency_ms": ms,
                "speedup": 0.80 / ms,
            }
            for name, (accuracy, agreement, kb, ms) in rows.items()
        },
        "qat_vs_ptq": {
            name: {
                "points": 100 * (0.8340 - rows[name][0]),
                "qat_only_correct": 90,
                "ptq_only_correct": 62,
            }
            for name in ("int8_ptq", "int8_ai_edge")
            if name in rows
        },
        "skipped": {"int8_ai_edge": "ai-edge-quantizer is not installed"} if skip_ai_edge else {},
    }


def test_the_qat_against_ptq_section_names_the_rows_the_run_has(tmp_path):
    readme, results = tmp_path / "README.md", tmp_path / "results"
    results.mkdir()
    for skip, expected_rows in ((False, 4), (True, 3)):
        readme.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
        (results / "deployment_ptq.json").write_text(json.dumps(_ptq_run(skip)))
        run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
        text = readme.read_text()
        section = text.split("### QAT against post-training quantization: ResNet-20")[1]
        section = section.split("###")[0]
        assert "Not measured yet" not in section
        table = [
            line
            for line in section.splitlines()
            if line.startswith("| int8") or line.startswith("| fp32")
        ]
        assert len(table) == expected_rows
        assert "| int8_ptq | TFLite converter PTQ" in section and "| 83.12% | 97.80% |" in section
        assert "against `int8_ptq`, +0.28 points: right only with QAT on 90 test images" in section
        # 90 against 62 discordant images: z = 28 / sqrt(152) = 2.27, significant.
        assert "(McNemar z = +2.27), so QAT is better than `int8_ptq`" in section
        if skip:
            assert "`int8_ai_edge` was left out: ai-edge-quantizer is not installed" in section
            assert "AI Edge Quantizer's file" not in section
            assert "int8_ai_edge`," not in section
        else:
            assert "AI Edge Quantizer 0.10.0, `static_wi8_ai8`" in section
            assert "so QAT is better than `int8_ai_edge`" in section


def test_a_paired_difference_within_its_spread_is_a_tie():
    from examples.benchmarks._results import paired_verdict

    assert paired_verdict(47, 48) == (pytest.approx(-1 / 95**0.5), "tied")
    assert paired_verdict(103, 59)[1] == "better" and paired_verdict(59, 103)[1] == "worse"
    assert paired_verdict(0, 0) == (0.0, "tied")  # identical predictions


def test_check_fails_on_a_stale_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\nstale\n<!-- results:end -->\n")
    result = run_script("examples.benchmarks.report", f"--readme={readme}", "--check")
    assert result.returncode == 1
    assert (
        "out of date" in result.stderr and "python -m examples.benchmarks.report" in result.stderr
    )
    assert "stale" in readme.read_text()  # --check never writes


def test_committed_results_name_no_absolute_path(tmp_path):
    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for path in RESULTS.glob("*.json"):
        absolute = [s for s in strings(json.loads(path.read_text())) if s.startswith("/")]
        assert not absolute, f"{path.name} names paths of the machine it ran on: {absolute}"

    # The writer makes them relative to the working directory.
    from examples.benchmarks._results import portable

    inside = str(tmp_path / "runs" / "baseline.keras")
    assert portable({"a": [inside, "/elsewhere/x"]}, root=tmp_path) == {
        "a": ["runs/baseline.keras", "/elsewhere/x"]
    }


def test_a_main_job_with_a_held_out_validation_set_reports_its_test_accuracy(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    results = tmp_path / "results"
    results.mkdir()
    metrics = json.loads((RESULTS / "compress_digits.json").read_text())
    metrics.update(
        validation="held-out training images",
        validation_images=300,
        test={"baseline_accuracy": 0.97, "compressed_accuracy": 0.9612, "tflite_accuracy": 0.96},
    )
    (results / "compress_digits.json").write_text(json.dumps(metrics))
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
    text = readme.read_text()
    assert "| search accuracy (300 held-out training images) |" in text
    assert (
        "| test accuracy (450 images, unseen by the search) | 0.9700 | "
        "0.9612 stripped Keras, 0.9600 int8 TFLite |"
    ) in text
