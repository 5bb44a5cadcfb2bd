"""torch for the deep stages: the shared helpers live in ``utils._torch`` (the CRFs' torch
backend uses them too, and ``crf/`` never imports ``deep/``)."""

from ..utils._torch import require_torch, resolve_device

__all__ = ["require_torch", "resolve_device"]
