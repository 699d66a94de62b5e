"""The `main` of every Bazel `py_test` in BUILD: runs pytest on the test files in its arguments.

A test module has no `__main__`, so a `py_test` whose `main` is the module
itself imports it and exits 0 without running a test. This runner exits with
pytest's status instead: non-zero when a test fails or none is collected.

    python tests/bazel_pytest_main.py tests/config_test.py [pytest options]
"""

import os
import sys


def main(argv=None):
    import pytest

    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.endswith(".py") for a in argv):
        print("Expected test files to run. Received: " + " ".join(argv), file=sys.stderr)
        return 2
    # Under `bazel test`, results and caches go to Bazel's directories, not the sandbox tree.
    if "TEST_UNDECLARED_OUTPUTS_DIR" in os.environ:
        argv += ["-p", "no:cacheprovider"]
    if "XML_OUTPUT_FILE" in os.environ:
        argv.append("--junitxml=" + os.environ["XML_OUTPUT_FILE"])
    return int(pytest.main(argv))


if __name__ == "__main__":
    sys.exit(main())
