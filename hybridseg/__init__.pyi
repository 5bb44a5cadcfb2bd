# Names of the lazily loaded public surface (read by lazy_loader and by editors).
from . import base, classical, crf, datasets, deep, dummy, metrics, utils, viz
from ._persistence import load, save
from ._show_versions import show_versions
from .apps._compare import compare
from .apps._segment import segment
from .utils._unaries import Unaries

__all__ = [
    "Unaries",
    "base",
    "classical",
    "compare",
    "crf",
    "datasets",
    "deep",
    "dummy",
    "load",
    "metrics",
    "save",
    "segment",
    "show_versions",
    "utils",
    "viz",
]
