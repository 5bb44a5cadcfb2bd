"""What the front ends share: file names of a method's results, the shown test images,
the results table and JSON writing (compare and its report); the user's modules on the
path and the networks on a device (compare and segment)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys

import numpy as np

from ..utils._io import write_text_atomic

#: Columns of ``results.csv`` before the ``iou_<class>`` ones.
COLUMNS = ("method", "miou", "miou_ci_low", "miou_ci_high", "base", "delta_vs_base",
           "delta_ci_low", "delta_ci_high", "p_vs_base", "pixel_accuracy", "boundary_f1",
           "boundary_miou_4px", "boundary_miou_8px", "boundary_miou_16px", "fit_seconds",
           "predict_seconds_per_image", "peak_memory_mb", "flag")
#: Half-widths in pixels of the boundary bands of ``results.csv``.
BOUNDARY_WIDTHS = (4, 8, 16)
#: Confidence of the intervals of ``results.csv`` (bootstrap over test images).
CONFIDENCE = 0.95
#: Optimiser steps below which a network is flagged as barely trained.
FEW_STEPS = 100
#: Test images shown in the figures.
N_SHOWN = 4


def vs_base_text(row):
    """A refinement's paired test against its base in words for the tables
    (``+3.8 [+3.4, +4.2] vs pixel, p = 0.0005``); empty for a row without one."""
    if row.get("delta_vs_base") is None:
        return ""
    return (f"{100 * row['delta_vs_base']:+.1f} [{100 * row['delta_ci_low']:+.1f}, "
            f"{100 * row['delta_ci_high']:+.1f}] vs {row['base']}, p = "
            f"{row['p_vs_base']:.3g}")


def _slug(name):
    """A method's name as a file name: ``pixel+dense`` -> ``pixel-plus-dense``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.replace("+", "-plus-"))


def _spread(n, k):
    """``k`` indices spread evenly over ``range(n)``."""
    if k >= n:
        return list(range(n))
    return sorted({round(i) for i in np.linspace(0, n - 1, k).tolist()})


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _write_json(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def write_csv(path, rows, class_names):
    """``results.csv``: ``COLUMNS`` then ``iou_<class>``, one row per method."""
    cols = [*COLUMNS, *(f"iou_{c}" for c in class_names)]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: (f"{r[c]:.6g}" if isinstance(r.get(c), float) else r.get(c))
                    for c in cols})
    write_text_atomic(path, buf.getvalue())


def add_python_path(dirs, *, environ=True):
    """Make the user's own modules (a network class, an ``output`` function) importable
    here and, with ``environ``, in every process started from here: each folder goes first
    on ``sys.path`` and on ``PYTHONPATH``, which new processes inherit (workers that are
    already running call this themselves with the folders)."""
    for d in reversed([os.path.abspath(os.fspath(d)) for d in (dirs or ())]):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"--python-path {d} is not a folder")
        if d not in sys.path:
            sys.path.insert(0, d)
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if environ and d not in parts:
            os.environ["PYTHONPATH"] = os.pathsep.join([d, *parts])


def place_on_device(model, device):
    """Put the networks of a fitted model on ``device`` (None: leave them where the file
    put them): a network segmenter, the steps of a ``Pipeline``, the estimator inside a
    ``FrozenEstimator``, and a ``DenseCRF`` of the torch backend. Returns ``model``."""
    if device is None:
        return model
    stack = [model]
    while stack:
        est = stack.pop()
        stack.extend(step for _, step in getattr(est, "steps", None) or ())
        if hasattr(est, "estimator") and type(est).__name__ == "FrozenEstimator":
            stack.append(est.estimator)
        if hasattr(est, "_move_to") and hasattr(est, "model_"):
            est._move_to(device)
        elif getattr(est, "backend", None) == "torch" and "device" in est.get_params():
            est.set_params(device=device)
    return model


def check_device(device):
    """A ``device`` argument: None, or a device this machine has (a clear error else)."""
    if device is None:
        return
    if not isinstance(device, str):
        raise TypeError(f"device must be a str ('cpu', 'cuda', 'cuda:1', 'auto'), got "
                        f"{type(device).__name__}")
    from ..utils._torch import resolve_device

    resolve_device(device)
