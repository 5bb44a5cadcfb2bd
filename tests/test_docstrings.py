"""The Examples sections of the public docstrings run and print what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "hybridseg.classical._quadtree",
    "hybridseg.classical._split_merge",
    "hybridseg.classical._pixel",
    "hybridseg.classical._features",
    "hybridseg.classical._pipelines",
    "hybridseg.utils._progress",
    "hybridseg.dummy",
    "hybridseg.deep.losses",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed"
