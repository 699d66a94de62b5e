"""The Bazel BUILD file lists every library module, test and example."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_build_lists_every_module_test_and_example():
    build = (ROOT / "BUILD").read_text()
    files = [
        *ROOT.glob("tf_aat/**/*.py"),
        *ROOT.glob("tests/**/*_test.py"),
        *ROOT.glob("examples/**/*.py"),
    ]
    missing = [str(p.relative_to(ROOT)) for p in files if f'"{p.relative_to(ROOT)}"' not in build]
    assert not missing, f"Add these to BUILD: {missing}"
