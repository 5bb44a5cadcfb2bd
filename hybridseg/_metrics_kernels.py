"""numba kernels behind ``hybridseg.metrics`` (compiled on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


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
