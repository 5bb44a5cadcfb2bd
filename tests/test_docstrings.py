"""The Examples sections of the public docstrings run and print what they show.

Every module of the package whose source holds an example (``>>>``) is run, so a new
module's examples are tested without a list to keep up to date.
"""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hybridseg"


def _modules_with_examples():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" or ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = list(_modules_with_examples())


def test_the_modules_with_examples_are_found():
    assert {"hybridseg.deep._segmenter", "hybridseg.deep._crfrnn_segmenter",
            "hybridseg.classical._pixel", "hybridseg.datasets._splits"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    if name.startswith("hybridseg.deep"):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed"
