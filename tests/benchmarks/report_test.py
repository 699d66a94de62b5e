"""The README's results section is rendered from the committed benchmark JSON."""

import json
import shutil

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
    assert text.count("Not measured yet") == 6  # one per section, each with its command
    assert "python -m examples.benchmarks.deployment_benchmark" in text

    shutil.copy(RESULTS / "deployment.json", results / "deployment.json")
    deployment = json.loads((results / "deployment.json").read_text())
    deployment["rows"]["pruned_int8"]["latency_ms"] = 0.123456
    (results / "deployment.json").write_text(json.dumps(deployment))
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
    text = readme.read_text()
    assert text.count("Not measured yet") == 5
    assert "| pruned_int8 |" in text and "0.123 ms" in text
    assert "Other recipes" not in text

    # Runs with other recipes get one comparison row each, with their flags.
    shutil.copy(RESULTS / "deployment_every_conv.json", results / "deployment_every_conv.json")
    run_module("examples.benchmarks.report", f"--readme={readme}", f"--results_dir={results}")
    text = readme.read_text()
    assert "Other recipes" in text and "| every conv, labels only |" in text
    assert "`--nodistill --prune_first_conv --ignored_scopes=`" in text


def test_check_fails_on_a_stale_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\nstale\n<!-- results:end -->\n")
    result = run_script("examples.benchmarks.report", f"--readme={readme}", "--check")
    assert result.returncode == 1
    assert (
        "out of date" in result.stderr and "python -m examples.benchmarks.report" in result.stderr
    )
    assert "stale" in readme.read_text()  # --check never writes
