"""numba kernels behind ``hybridseg.metrics`` (compiled on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .utils._parallel import serialized_launches


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def accumulate_confusion(y_true, y_pred, n_classes, ignore_index, has_ignore, n_threads, out):
    """Add one pair of ``(H, W)`` label maps to the ``(K, K)`` int64 matrix ``out``.

    Rows are split into ``n_threads`` chunks (numba's thread count, passed in: reading it
    inside the kernel would stop numba from caching it), each counting into a private
    matrix; the counts are summed at the end. Pixels whose true label is ``ignore_index``
    (when ``has_ignore``) are skipped. Returns the numbers of pixels whose true label, and
    whose predicted label, lie outside ``[0, n_classes)``: those pixels are not counted, and
    the caller raises.
    """
    n_rows, n_cols = y_true.shape
    n_chunks = max(1, min(n_threads, n_rows))
    local = np.zeros((n_chunks, n_classes, n_classes), np.int64)
    bad = np.zeros((n_chunks, 2), np.int64)
    for c in prange(n_chunks):
        r0 = c * n_rows // n_chunks
        r1 = (c + 1) * n_rows // n_chunks
        for i in range(r0, r1):
            for j in range(n_cols):
                t = np.int64(y_true[i, j])
                if has_ignore and t == ignore_index:
                    continue
                p = np.int64(y_pred[i, j])
                if t < 0 or t >= n_classes:
                    bad[c, 0] += 1
                elif p < 0 or p >= n_classes:
                    bad[c, 1] += 1
                else:
                    local[c, t, p] += 1
    for c in range(n_chunks):
        for a in range(n_classes):
            for b in range(n_classes):
                out[a, b] += local[c, a, b]
    return bad[:, 0].sum(), bad[:, 1].sum()


@numba.njit(cache=True, nogil=True)
def _edge_map(labels, valid):
    """Pixels with a valid 4-neighbour of another label (themselves valid)."""
    n_rows, n_cols = labels.shape
    edge = np.zeros((n_rows, n_cols), np.bool_)
    for i in range(n_rows):
        for j in range(n_cols):
            if not valid[i, j]:
                continue
            a = labels[i, j]
            if j + 1 < n_cols and valid[i, j + 1] and labels[i, j + 1] != a:
                edge[i, j] = True
                edge[i, j + 1] = True
            if i + 1 < n_rows and valid[i + 1, j] and labels[i + 1, j] != a:
                edge[i, j] = True
                edge[i + 1, j] = True
    return edge


@numba.njit(cache=True, nogil=True, inline="always")
def _has_match(edge, labels, k, i, j, d_rows, d_cols):
    """1 if an edge pixel of class ``k`` lies at one of the offsets from ``(i, j)``."""
    n_rows, n_cols = labels.shape
    for o in range(d_rows.shape[0]):
        a = i + d_rows[o]
        b = j + d_cols[o]
        if 0 <= a < n_rows and 0 <= b < n_cols and edge[a, b] and labels[a, b] == k:
            return 1
    return 0


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def boundary_counts(y_true, y_pred, n_classes, ignore_index, has_ignore, d_rows, d_cols,
                    n_threads):
    """Boundary matching counts of one image, per class.

    ``d_rows, d_cols`` are the offsets within the tolerance, nearest first. Returns
    ``counts (K, 4)`` int64: predicted boundary pixels, those with a true boundary pixel of
    the same class within tolerance, true boundary pixels, those matched by a predicted
    one; and ``present (K, 2)`` bool: the class occurs among the valid pixels of the truth,
    of the prediction.
    """
    n_rows, n_cols = y_true.shape
    valid = np.ones((n_rows, n_cols), np.bool_)
    present = np.zeros((n_classes, 2), np.bool_)
    for i in range(n_rows):
        for j in range(n_cols):
            if has_ignore and y_true[i, j] == ignore_index:
                valid[i, j] = False
            else:
                present[y_true[i, j], 0] = True
                present[y_pred[i, j], 1] = True
    edge_t = _edge_map(y_true, valid)
    edge_p = _edge_map(y_pred, valid)
    n_chunks = max(1, min(n_threads, n_rows))
    local = np.zeros((n_chunks, n_classes, 4), np.int64)
    for c in prange(n_chunks):
        for i in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            for j in range(n_cols):
                if edge_p[i, j]:
                    k = y_pred[i, j]
                    local[c, k, 0] += 1
                    local[c, k, 1] += _has_match(edge_t, y_true, k, i, j, d_rows, d_cols)
                if edge_t[i, j]:
                    k = y_true[i, j]
                    local[c, k, 2] += 1
                    local[c, k, 3] += _has_match(edge_p, y_pred, k, i, j, d_rows, d_cols)
    counts = np.zeros((n_classes, 4), np.int64)
    for c in range(n_chunks):
        counts += local[c]
    return counts, present
