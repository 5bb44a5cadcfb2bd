"""One pass over a large score array for ``check_scores``: finiteness, range and the worst
row sum, instead of a numpy pass (and a temporary) for each."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._parallel import serialized_launches

__all__ = ["scan_scores"]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath={"reassoc", "contract", "nsz"})
def _scan(rows, bits, n_blocks):
    """Per block: non-finite entries, min, max, worst |row sum - 1| (float32 sums, exact
    enough for the 1e-3 tolerance). Non-finite entries are found from the bits (``bits``
    is ``rows`` viewed as int32: an exponent of all ones), which the fast-math flags of
    the float sums cannot optimise away."""
    n, k = rows.shape
    bad = np.zeros(n_blocks, np.int64)
    lo = np.full(n_blocks, np.inf, np.float32)
    hi = np.full(n_blocks, -np.inf, np.float32)
    worst = np.zeros(n_blocks, np.float32)
    expo = np.int32(0x7F800000)
    for b in prange(n_blocks):
        mn = np.float32(np.inf)
        mx = np.float32(-np.inf)
        dev = np.float32(0.0)
        count = 0
        for i in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            s = np.float32(0.0)
            for c in range(k):
                v = rows[i, c]
                s += v
                mn = min(mn, v)
                mx = max(mx, v)
            for c in range(k):
                count += (bits[i, c] & expo) == expo
            dev = max(dev, abs(s - np.float32(1.0)))
        bad[b] = count
        lo[b] = mn
        hi[b] = mx
        worst[b] = dev
    return bad.sum(), lo.min(), hi.max(), worst.max()


def scan_scores(scores, want_sums):
    """``(n_nonfinite, min, max, worst |row sum - 1|)`` of a C-contiguous float32 array
    whose last axis is the classes (the range and sums over the finite entries)."""
    rows = scores.reshape(-1, scores.shape[-1])
    n_blocks = max(1, min(64, rows.shape[0] // 16384))
    bad, lo, hi, worst = _scan(rows, rows.view(np.int32), n_blocks)
    return int(bad), float(lo), float(hi), float(worst) if want_sums else 0.0
