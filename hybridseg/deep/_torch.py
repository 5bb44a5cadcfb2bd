"""Import torch for the deep stages, with a clear error where it is missing."""

from __future__ import annotations

_HINT = (
    "the deep stages of hybridseg need PyTorch: install it first (on a CPU-only machine "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`, with a GPU as "
    "https://pytorch.org says), or `pip install hybridseg[deep]`"
)


def require_torch():
    """Return the ``torch`` module, or raise an ``ImportError`` that says how to get it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed where tests run
        raise ImportError(_HINT) from exc
    return torch
