"""The package's layering: algorithms stand side by side on shared plumbing."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tf_aat"
ALGORITHMS = ("pruning", "quantization", "sparsity")


def _imports(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _imported_packages(directory):
    found = {}
    for path in sorted((PACKAGE / directory).glob("*.py")):
        for name in _imports(path):
            for algorithm in ALGORITHMS:
                if name.startswith(f"tf_aat.{algorithm}") and algorithm != directory:
                    found.setdefault(path.name, set()).add(name)
    return found


def test_quantization_imports_nothing_from_pruning():
    assert _imported_packages("quantization") == {}


def test_pruning_imports_no_other_algorithm():
    assert _imported_packages("pruning") == {}


def test_the_core_names_no_algorithm():
    # create_compressed_model, the config, the callbacks and the search loop over
    # the algorithm registry; a new algorithm is a subpackage plus a registration.
    for name in ("_api.py", "_config.py", "_callbacks.py", "_controller.py", "_algorithms.py"):
        imported = _imports(PACKAGE / name)
        assert not any(i.startswith(tuple(f"tf_aat.{a}" for a in ALGORITHMS)) for i in imported), (
            name,
            imported,
        )
    for path in (PACKAGE / "accuracy_aware").glob("*.py"):
        imported = _imports(path)
        assert not any(i.startswith(tuple(f"tf_aat.{a}" for a in ALGORITHMS)) for i in imported), (
            path.name
        )


def test_examples_and_benchmarks_use_the_public_api_only():
    # What a user copies from examples/ must work on the names tf_aat documents.
    examples = PACKAGE.parent / "examples"
    private = []
    for path in sorted(examples.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                modules = [f"{node.value.id}.{node.attr}"]
            else:
                continue
            private += [
                f"{path.relative_to(examples)}: {m}"
                for m in modules
                if m.startswith("tf_aat") and any(p.startswith("_") for p in m.split(".")[1:])
            ]
    assert not private
