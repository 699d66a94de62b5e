"""The README's Python code blocks run, in order, in one namespace."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102


def test_readme_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[tensorflow,tests]" && python -m pytest' in text
    assert 'pip install -q -c .ci/constraints.txt -e ".[tensorflow,tests]"' in ci
    # The oldest supported versions, with an existing tensorflow-cpu that pip must keep.
    assert "pip install -q -c .ci/constraints-oldest.txt tensorflow-cpu" in ci
    assert 'pip install -q -c .ci/constraints-oldest.txt -e ".[tests]"' in ci
    assert "python -m pytest" in ci
