"""Regenerates BUILD from the tree: python .ci/gen_build.py > BUILD"""

import pathlib

root = pathlib.Path(__file__).resolve().parents[1]


def rel(paths):
    return sorted(str(p.relative_to(root)) for p in paths if "__pycache__" not in str(p))


def listing(paths, indent="        "):
    return "\n".join(f'{indent}"{p}",' for p in paths)


library = rel(root.glob("tf_aat/**/*.py"))
RUNNER = "tests/bazel_pytest_main.py"  # each py_test's main: runs pytest on its file
helpers = rel(
    p
    for p in root.glob("tests/**/*.py")
    if not p.name.endswith("_test.py") and p.name != "bazel_pytest_main.py"
)
examples = rel(root.glob("examples/**/*.py"))
tests = rel(root.glob("tests/**/*_test.py"))
print('load("@rules_python//python:defs.bzl", "py_library", "py_test")\n')
print('package(default_visibility = ["//visibility:public"])\n')
print(
    f'py_library(\n    name = "tf_aat",\n    srcs = [\n{listing(library)}\n    ],\n    imports = ["."],\n)\n'
)
print(
    f'py_library(\n    name = "examples",\n    srcs = [\n{listing(examples)}\n    ],\n    data = glob(["examples/configs/*.json"]),\n    deps = [":tf_aat"],\n)\n'
)
print(
    f'py_library(\n    name = "test_helpers",\n    srcs = [\n{listing(helpers)}\n    ],\n    deps = [":tf_aat"],\n)\n'
)
for test in tests:
    name = test[: -len(".py")].replace("/", "_")
    size = "large" if "examples" in test or "digits" in test else "medium"
    print(
        f'py_test(\n    name = "{name}",\n    size = "{size}",\n    srcs = ["{test}", "{RUNNER}"],\n'
        f'    main = "{RUNNER}",\n    args = ["$(location {test})"],\n    data = ["BUILD"],\n'
        f'    deps = [":examples", ":test_helpers", ":tf_aat"],\n)\n'
    )
