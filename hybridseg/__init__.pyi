# Names of the lazily loaded public surface (read by lazy_loader and by editors).
from . import base, crf, datasets, dummy, metrics, utils
from ._show_versions import show_versions
from ._unaries import Unaries

__all__ = [
    "Unaries",
    "base",
    "crf",
    "datasets",
    "dummy",
    "metrics",
    "show_versions",
    "utils",
]
