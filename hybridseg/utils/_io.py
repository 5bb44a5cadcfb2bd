"""Writing files so that a reader sees the whole file or none of it."""

from __future__ import annotations

import contextlib
import os

__all__ = ["write_atomic", "write_text_atomic"]


def write_atomic(path, write):
    """Write ``path`` through ``write(file)`` into a hidden temporary file of the same
    folder, then rename it: readers see the whole file or none. The temporary file
    (``.<name>.<pid>.tmp``, a name no reader takes for an output) is removed on any error;
    one a killed process left behind is for the next run to remove.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder is created when missing.
    write : callable
        ``write(file)`` writes the content to a binary file object.
    """
    directory, name = os.path.split(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text_atomic(path, text):
    """``write_atomic`` for UTF-8 text."""
    data = text.encode("utf-8")
    write_atomic(path, lambda f: f.write(data))
