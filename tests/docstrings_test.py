"""Every public name has its own docstring, and the generated API page builds.

Public: the names in `__all__` of `tf_aat` and of its subpackages, and the
public methods and properties those classes define themselves (inherited
Keras methods are Keras's to document).
"""

import importlib
import inspect

import pytest

PACKAGES = (
    "tf_aat",
    "tf_aat.accuracy_aware",
    "tf_aat.pruning",
    "tf_aat.quantization",
    "tf_aat.sparsity",
)


def _own_doc(value):
    if isinstance(value, property):
        value = value.fget
    elif isinstance(value, (classmethod, staticmethod)):
        value = value.__func__
    return (getattr(value, "__doc__", None) or "").strip()


def _is_documentable(value):
    return isinstance(value, (property, classmethod, staticmethod)) or inspect.isfunction(value)


def public_objects():
    """(qualified name, object) for every public module, class, function and member."""
    seen = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        yield package, module
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if id(value) in seen:
                continue
            seen.add(id(value))
            yield f"{package}.{name}", value
            if not inspect.isclass(value):
                continue
            for member, attribute in vars(value).items():
                if member.startswith("_") or not _is_documentable(attribute):
                    continue
                yield f"{package}.{name}.{member}", attribute


def test_every_public_name_has_a_docstring():
    missing = [name for name, value in public_objects() if not _own_doc(value)]
    assert missing == [], f"{len(missing)} public names without a docstring: {missing}"


def test_public_names_are_many_and_include_the_controllers_methods():
    names = {name for name, _ in public_objects()}
    # The walk must reach what users call most, or the check above says little.
    for expected in (
        "tf_aat.create_compressed_model",
        "tf_aat.export_tflite",
        "tf_aat.strip_model",
        "tf_aat.FilterPruningController.compression_rate",
        "tf_aat.FilterPruningController.statistics",
        "tf_aat.FilterPruningController.strip_model",
        "tf_aat.FilterPruningController.get_state",
        "tf_aat.CompressionController.scheduler",
        "tf_aat.AccuracyAwareResult.to_dict",
        "tf_aat.CompressionConfig.to_dict",
        "tf_aat.sparsity.SparsityController.compression_rate",
        "tf_aat.QuantizationController.statistics",
    ):
        assert expected in names


@pytest.mark.parametrize(
    "name",
    [
        "create_compressed_model",
        "export_tflite",
        "strip_model",
        "AccuracyAwareCallback",
        "create_accuracy_aware_training_loop",
    ],
)
def test_main_entry_points_have_an_example(name):
    import tf_aat

    doc = inspect.getdoc(getattr(tf_aat, name))
    assert "Example" in doc and "```python" in doc, name
    assert "Args:" in doc or "Arguments:" in doc, name


def test_scheduler_is_visible_to_help():
    import pydoc

    import tf_aat

    text = pydoc.render_doc(tf_aat.FilterPruningController, renderer=pydoc.plaintext)
    assert "scheduler" in text
    assert "epoch_step" in inspect.getdoc(tf_aat.CompressionController.scheduler)


API_MODULES = [*PACKAGES]


def build_api_page(output):
    """Builds the API page the README describes; returns pdoc's combined output."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PDOC_ALLOW_EXEC="1", TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "pdoc", "--docformat", "google", "-o", str(output)]
    completed = subprocess.run(
        command + API_MODULES, capture_output=True, text=True, env=env, timeout=600
    )
    return completed.returncode, completed.stdout + completed.stderr


def test_api_page_builds_without_warnings_and_lists_the_main_names(tmp_path):
    pytest.importorskip("pdoc")
    code, output = build_api_page(tmp_path)
    assert code == 0, output
    # pdoc reports its problems as "Warn:" lines (or a traceback); TensorFlow's
    # start-up lines on stderr are not pdoc's.
    problems = [
        line for line in output.splitlines() if line.startswith(("Warn", "Error", "Traceback"))
    ]
    assert problems == [], output
    page = (tmp_path / "tf_aat.html").read_text(encoding="utf-8")
    for name in (
        "create_compressed_model",
        "export_tflite",
        "strip_model",
        "AccuracyAwareCallback",
        "create_accuracy_aware_training_loop",
        "CompressionConfig",
        "FilterPruningController",
    ):
        assert f'id="{name}"' in page, name
    # Docstring text made it in, not only the names.
    assert "Wraps `model` with the compression algorithms" in page.replace("<code>", "`").replace(
        "</code>", "`"
    )
    for package in ("accuracy_aware", "pruning", "quantization", "sparsity"):
        assert (tmp_path / "tf_aat" / f"{package}.html").exists(), package
    # Private modules stay out of the page.
    assert not list(tmp_path.rglob("_*.html"))


def test_readme_builds_the_same_page():
    import pathlib

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    command = "python -m pdoc --docformat google -o api_docs " + " ".join(API_MODULES)
    assert command in readme
