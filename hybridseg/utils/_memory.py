"""A memory plan before big allocations: how much the machine has, and a clear
``MemoryError`` up front instead of numpy's after a stray label or a huge parameter."""

from __future__ import annotations

import os

__all__ = ["available_memory", "check_memory", "format_bytes"]


def available_memory():
    """Bytes of memory this process may still take: the machine's available memory (Linux
    ``MemAvailable``, else ``sysconf``), ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n):
    """``n`` bytes as a short human figure: ``'36.5 GiB'``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(n_bytes, what, hint):
    """Raise ``MemoryError`` before allocating ``n_bytes`` for ``what`` when the machine
    does not have them, with ``hint`` saying how to need less.

    Parameters
    ----------
    n_bytes : int
        The planned allocation (or peak) in bytes.
    what : str
        What it is for, as the start of a sentence: ``"a 70001 x 70001 confusion matrix"``.
    hint : str
        What the user can change.
    """
    available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryError(f"{what} needs {format_bytes(n_bytes)}, but this machine has "
                          f"{format_bytes(available)} available: {hint}")
