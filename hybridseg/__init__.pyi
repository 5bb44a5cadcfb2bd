# Names of the lazily loaded public surface (read by lazy_loader and by editors).
from . import base, classical, crf, datasets, deep, dummy, metrics, utils, viz
from ._compare import compare
from ._persistence import load, save
from ._segment import segment
from ._show_versions import show_versions
from ._unaries import Unaries

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
