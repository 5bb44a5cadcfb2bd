"""What compare's runner and its report share: file names of a method's results, the
shown test images, the results table and JSON writing."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np

from ..utils._io import write_text_atomic

#: Columns of ``results.csv`` before the ``iou_<class>`` ones.
COLUMNS = ("method", "miou", "pixel_accuracy", "boundary_f1", "fit_seconds",
           "predict_seconds_per_image", "peak_memory_mb")
#: Test images shown in the figures.
N_SHOWN = 4


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
