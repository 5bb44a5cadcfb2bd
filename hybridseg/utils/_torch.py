"""Import torch where a stage needs it, with a clear error where it is missing; resolve
``device`` arguments."""

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


def resolve_device(device):
    """A ``torch.device`` from ``"auto"`` (CUDA where available, else the CPU), a name
    such as ``"cuda:1"``, or a device; a clear ``ValueError`` for anything else or for CUDA
    on a machine without it."""
    torch = require_torch()
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:i]' or a torch.device, got "
                         f"{device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use "
                         "device='auto' or 'cpu'")
    return resolved
