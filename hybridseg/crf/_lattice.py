"""Permutohedral-lattice Gaussian filtering in numba (Adams, Baek and Davis, 2010).

The lattice follows the construction Krähenbühl and Koltun's dense CRF code uses (the one
inside pydensecrf), so that the same features give the same filter: features are scaled by
``sqrt(2/3) (d + 1) / sqrt((i + 1)(i + 2))``, elevated onto the plane ``sum = 0`` in
``d + 1`` dimensions, rounded to the nearest remainder-0 lattice point, and each point
splats onto the ``d + 1`` vertices of its simplex with barycentric weights. The blur is one
pass per lattice direction with weights ``(0.5, 1, 0.5)``, and slicing scales by
``1 / (1 + 2^-d)``.

The lattice is built once per image and kernel (:func:`build_lattice`) and then filters any
number of channels, any number of times (:func:`filter_values`). The hash table is serial;
embedding, splatting, blurring and slicing run in parallel, and every output is the same
to the last bit for any number of threads: the splat gathers, one thread per vertex
summing its contributions in point order (the order of a serial scatter), where a
scatter into per-thread accumulators would sum in an order set by the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ..utils._parallel import serialized_launches

# Sums over the points run in this many blocks whatever the thread count, each summed in
# order and the blocks then added in order, so that they give the same bits anywhere.
REDUCTION_BLOCKS = 64


@numba.njit(cache=True, nogil=True)
def reduction_blocks(n):
    """The number of blocks a sum over ``n`` points runs in: fixed, not the thread count
    (callable from Python and from numba kernels)."""
    return max(1, min(REDUCTION_BLOCKS, n))


# --------------------------------------------------------------------------- embedding


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _embed(features, n_chunks, rem0_out, rank_out, bary_out):
    """Per point: the remainder-0 lattice point, the simplex ranks, barycentric weights."""
    n, d = features.shape
    scale = np.empty(d, np.float32)
    inv_std = np.float32(math.sqrt(2.0 / 3.0) * (d + 1))
    for i in range(d):
        scale[i] = np.float32(1.0 / math.sqrt((i + 2) * (i + 1))) * inv_std
    down = np.float32(1.0 / (d + 1))
    up = np.float32(d + 1)
    for c in prange(n_chunks):
        elevated = np.empty(d + 1, np.float32)
        rem0 = np.empty(d + 1, np.float32)
        rank = np.empty(d + 1, np.int32)
        bary = np.empty(d + 2, np.float32)
        for k in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            sm = np.float32(0.0)
            for j in range(d, 0, -1):
                cf = features[k, j - 1] * scale[j - 1]
                elevated[j] = sm - np.float32(j) * cf
                sm += cf
            elevated[0] = sm
            total = np.float32(0.0)
            for i in range(d + 1):
                v = np.rint(down * elevated[i])
                rem0[i] = v * up
                total += v
            for i in range(d + 1):
                rank[i] = 0
            for i in range(d):
                di = elevated[i] - rem0[i]
                for j in range(i + 1, d + 1):
                    if di < elevated[j] - rem0[j]:
                        rank[i] += 1
                    else:
                        rank[j] += 1
            s = np.int32(total)
            for i in range(d + 1):
                rank[i] += s
                if rank[i] < 0:
                    rank[i] += d + 1
                    rem0[i] += up
                elif rank[i] > d:
                    rank[i] -= d + 1
                    rem0[i] -= up
            for i in range(d + 2):
                bary[i] = 0.0
            for i in range(d + 1):
                v = (elevated[i] - rem0[i]) * down
                bary[d - rank[i]] += v
                bary[d - rank[i] + 1] -= v
            bary[0] += np.float32(1.0) + bary[d + 1]
            for i in range(d + 1):
                rem0_out[k, i] = np.int32(rem0[i])
                rank_out[k, i] = rank[i]
                bary_out[k, i] = bary[i]


# --------------------------------------------------------------------------- hashing


@numba.njit(cache=True, nogil=True, inline="always")
def _hash(key, d):
    h = np.uint64(0)
    for i in range(d):
        h = (h + np.uint64(np.int64(key[i]) & 0xFFFFFFFF)) * np.uint64(1664525)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h


@numba.njit(cache=True, nogil=True)
def _find(table, keys, key, d, mask):
    """Slot of ``key`` in the open-addressing ``table``: its entry, or the empty slot."""
    h = np.int64(_hash(key, d) & np.uint64(mask))
    while True:
        e = table[h]
        if e < 0:
            return h
        same = True
        for i in range(d):
            if keys[e, i] != key[i]:
                same = False
                break
        if same:
            return h
        h = (h + 1) & mask


@numba.njit(cache=True, nogil=True)
def _insert_all(rem0, rank, d):
    """Give every simplex vertex of every point a lattice index; return the keys too."""
    n = rem0.shape[0]
    capacity = 1
    while capacity < max(64, 2 * n):
        capacity *= 2
    table = np.full(capacity, -1, np.int32)
    keys = np.empty((capacity // 2 + 1, d), np.int32)
    filled = 0
    offsets = np.empty((n, d + 1), np.int32)
    key = np.empty(d, np.int32)
    for k in range(n):
        if k > 0:
            # Neighbouring points often fall in the same simplex: reuse its vertices.
            same = True
            for i in range(d + 1):
                if rem0[k, i] != rem0[k - 1, i] or rank[k, i] != rank[k - 1, i]:
                    same = False
                    break
            if same:
                for r in range(d + 1):
                    offsets[k, r] = offsets[k - 1, r]
                continue
        for r in range(d + 1):
            for i in range(d):
                ri = rank[k, i]
                key[i] = rem0[k, i] + (r if ri <= d - r else r - (d + 1))
            mask = capacity - 1
            slot = _find(table, keys, key, d, mask)
            if table[slot] < 0:
                if 2 * (filled + 1) > capacity:
                    # Grow: double the table and re-insert the keys stored so far.
                    capacity *= 2
                    mask = capacity - 1
                    table = np.full(capacity, -1, np.int32)
                    new_keys = np.empty((capacity // 2 + 1, d), np.int32)
                    new_keys[:filled] = keys[:filled]
                    keys = new_keys
                    for e in range(filled):
                        table[_find(table, keys, keys[e], d, mask)] = e
                    slot = _find(table, keys, key, d, mask)
                keys[filled] = key
                table[slot] = filled
                filled += 1
            offsets[k, r] = table[slot]
    return offsets, keys[:filled].copy(), table, filled


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _neighbours(keys, table, d):
    """``(d + 1, M, 2)`` indices of the two neighbours along each lattice direction.

    A missing neighbour points at ``M``, a row of zeros in the value arrays.
    """
    m = keys.shape[0]
    mask = table.shape[0] - 1
    out = np.empty((d + 1, m, 2), np.int32)
    for p in prange(m):
        n1 = np.empty(d, np.int32)
        n2 = np.empty(d, np.int32)
        for j in range(d + 1):
            for i in range(d):
                n1[i] = keys[p, i] - 1
                n2[i] = keys[p, i] + 1
            if j < d:
                n1[j] = keys[p, j] + d
                n2[j] = keys[p, j] - d
            e1 = table[_find(table, keys, n1, d, mask)]
            e2 = table[_find(table, keys, n2, d, mask)]
            out[j, p, 0] = e1 if e1 >= 0 else m
            out[j, p, 1] = e2 if e2 >= 0 else m
    return out


# --------------------------------------------------------------------------- filtering


@numba.njit(cache=True, nogil=True)
def _owners(offsets, n_lattice):
    """Each vertex's contributions, in point order: ``start`` (M + 1,) and ``src``
    (N (d + 1),) int32, the flat indices ``k (d + 1) + r`` of the (point, corner) pairs
    that splat onto vertex ``p`` being ``src[start[p]:start[p + 1]]``, ascending (a
    stable counting sort of ``offsets``)."""
    n, dp1 = offsets.shape
    start = np.zeros(n_lattice + 1, np.int32)
    for k in range(n):
        for r in range(dp1):
            start[offsets[k, r] + 1] += 1
    for p in range(n_lattice):
        start[p + 1] += start[p]
    fill = start[:n_lattice].copy()
    src = np.empty(n * dp1, np.int32)
    for k in range(n):
        for r in range(dp1):
            o = offsets[k, r]
            src[fill[o]] = k * dp1 + r
            fill[o] += 1
    return start, src


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _splat(start, src, weights, values, n_lattice):
    """Sum ``weights * values`` onto the lattice: ``(M + 1, C)``, the last row zero.

    Each vertex is summed by one thread, over its contributions in point order, so the
    result is the same to the last bit for any number of threads.
    """
    dp1 = weights.shape[1]
    c_dim = values.shape[1]
    flat = weights.reshape(weights.size)
    out = np.empty((n_lattice + 1, c_dim), np.float32)
    for p in prange(n_lattice):
        for ch in range(c_dim):
            out[p, ch] = np.float32(0.0)
        for e in range(start[p], start[p + 1]):
            f = src[e]
            k = f // dp1
            w = flat[f]
            for ch in range(c_dim):
                out[p, ch] += w * values[k, ch]
    for ch in range(c_dim):
        out[n_lattice, ch] = np.float32(0.0)
    return out


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _blur(values, neighbours, reverse):
    """One pass of ``(0.5, 1, 0.5)`` along each of the ``d + 1`` lattice directions.

    Each pass is a symmetric operator, so running them in ``reverse`` order applies the
    transpose of the whole blur (what the gradient of a filter needs).
    """
    n_dirs, m, _ = neighbours.shape
    c_dim = values.shape[1]
    other = np.zeros_like(values)
    for jj in range(n_dirs):
        j = n_dirs - 1 - jj if reverse else jj
        for p in prange(m):
            a = neighbours[j, p, 0]
            b = neighbours[j, p, 1]
            for ch in range(c_dim):
                other[p, ch] = values[p, ch] + np.float32(0.5) * (values[a, ch] + values[b, ch])
        values, other = other, values
    return values


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _slice_add(offsets, weights, lattice_values, out):
    """``out += sum_r weights * lattice_values[offsets]`` for every point."""
    n, dp1 = offsets.shape
    c_dim = out.shape[1]
    for k in prange(n):
        for r in range(dp1):
            o = offsets[k, r]
            w = weights[k, r]
            for ch in range(c_dim):
                out[k, ch] += w * lattice_values[o, ch]


# --------------------------------------------------------------------------- public


class Lattice:
    """A permutohedral lattice over ``N`` points with ``d`` features, ready to filter.

    Parameters
    ----------
    features : (N, d) array_like of float
        Point positions, already divided by the kernel's standard deviations.

    Attributes
    ----------
    n_points, n_features, n_lattice : int
        N, d and the number of lattice points M.
    offsets : (N, d + 1) ndarray of int32
        Lattice vertex of each point's simplex corners.
    weights : (N, d + 1) ndarray of float32
        Barycentric weights.
    neighbours : (d + 1, M, 2) ndarray of int32
        Blur neighbours (``M`` for a missing one).
    """

    def __init__(self, features):
        f = np.ascontiguousarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
            raise ValueError(f"features must be a non-empty (N, d) array, got {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError("features hold NaN or infinite values")
        n, d = f.shape
        if n * (d + 1) >= 2**31:
            raise ValueError(
                f"{n} points with {d} features make a lattice too large to index (N (d + 1) "
                "must stay below 2^31, about 350 megapixels for the bilateral kernel of an "
                "RGB image): refine the image in tiles")
        self.n_points, self.n_features = n, d
        self.n_chunks = reduction_blocks(n)  # of the embedding: per point, any count
        rem0 = np.empty((n, d + 1), np.int32)
        rank = np.empty((n, d + 1), np.int32)
        bary = np.empty((n, d + 1), np.float32)
        _embed(f, self.n_chunks, rem0, rank, bary)
        offsets, keys, table, m = _insert_all(rem0, rank, d)
        self.offsets = offsets
        self._start, self._src = _owners(offsets, m)
        self.weights = bary
        self.neighbours = _neighbours(keys, table, d)
        self.n_lattice = int(m)
        self.alpha = np.float32(1.0 / (1.0 + 2.0 ** (-d)))

    def splat(self, weights, values):
        """``(M + 1, C)`` float32: ``weights * values`` summed onto the vertices (the last
        row zero), the same to the last bit for any number of threads.

        Parameters
        ----------
        weights : (N, d + 1) ndarray of float32, C-contiguous
        values : (N, C) ndarray of float32, C-contiguous
        """
        return _splat(self._start, self._src, np.ascontiguousarray(weights, np.float32),
                      np.ascontiguousarray(values, np.float32), self.n_lattice)

    def filter(self, values, *, splat_weights=None, slice_weights=None, out=None,
               transpose=False):
        """Gaussian-filter ``values`` over the points: splat, blur, slice.

        Parameters
        ----------
        values : (N, C) ndarray of float32
        splat_weights, slice_weights : (N, d + 1) ndarray of float32, optional
            Per-vertex weights; by default the barycentric weights (times ``alpha`` when
            slicing), which give pydensecrf's unnormalised filter.
        out : (N, C) ndarray of float32, optional
            Accumulate into it (``out += filtered``) instead of a new array.
        transpose : bool, default=False
            Apply the transpose of the filter instead: slice weights to splat, splat
            weights to slice, and the blur directions in reverse order. The lattice filter
            is only nearly symmetric; gradients need its exact transpose.

        Returns
        -------
        filtered : (N, C) ndarray of float32
        """
        v = np.ascontiguousarray(values, dtype=np.float32)
        if v.ndim == 1:
            v = v[:, None]
        sw = self.weights if splat_weights is None else splat_weights
        lw = self.weights * self.alpha if slice_weights is None else slice_weights
        if transpose:
            sw, lw = lw, sw
        lat = _blur(self.splat(sw, v), self.neighbours, transpose)
        if out is None:
            out = np.zeros(v.shape, np.float32)
        _slice_add(self.offsets, lw, lat, out)
        return out
