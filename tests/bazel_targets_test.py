"""The Bazel `py_test`s run their test files and fail when a test fails.

Bazel itself could not run here (Debian's bazel-bootstrap 4.2.3 installs, but
fetches rules_cc from GitHub before any py_test, and there is no network), so
this checks the targets `.ci/gen_build.py` writes and runs their runner directly.
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNNER = "tests/bazel_pytest_main.py"


def _generated_build():
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "gen_build.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _py_tests(build):
    for block in re.findall(r"py_test\((.*?)\n\)", build, flags=re.S):
        fields = dict(re.findall(r"(\w+) = (\[.*?\]|\"[^\"]*\")", block, flags=re.S))
        yield {k: eval(v) for k, v in fields.items()}  # noqa: S307 - lists of string literals


def test_every_py_test_runs_its_file_with_the_runner():
    targets = list(_py_tests(_generated_build()))
    tests = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("tests/**/*_test.py"))
    assert sorted(t["srcs"][0] for t in targets) == tests
    for target in targets:
        test = target["srcs"][0]
        assert target["main"] == RUNNER and RUNNER in target["srcs"], target
        assert target["args"] == [f"$(location {test})"], target
        assert (ROOT / test).exists()
    assert (ROOT / RUNNER).exists() and (ROOT / "MODULE.bazel").exists()
    assert "rules_python" in (ROOT / "MODULE.bazel").read_text()


def _run_runner(tmp_path, body):
    (tmp_path / "sample_test.py").write_text(body)
    return subprocess.run(
        [sys.executable, str(ROOT / RUNNER), "sample_test.py", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_runner_fails_on_a_failing_test(tmp_path):
    result = _run_runner(tmp_path, "def test_fails():\n    assert 1 == 2\n")
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout


def test_runner_passes_on_a_passing_test(tmp_path):
    result = _run_runner(tmp_path, "def test_passes():\n    assert 1 == 1\n")
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout


def test_runner_fails_without_tests(tmp_path):
    result = _run_runner(tmp_path, "")  # a file with no tests: pytest exits 5
    assert result.returncode == 5
    no_args = subprocess.run([sys.executable, str(ROOT / RUNNER)], capture_output=True, text=True)
    assert no_args.returncode == 2
