"""Permutohedral-lattice Gaussian filtering in numba (Adams, Baek and Davis, 2010).

The lattice follows the construction Krähenbühl and Koltun's dense CRF code uses (the one
inside pydensecrf), so that the same features give the same filter: features are scaled by
``sqrt(2/3) (d + 1) / sqrt((i + 1)(i + 2))``, elevated onto the plane ``sum = 0`` in
``d + 1`` dimensions, rounded to the nearest remainder-0 lattice point, and each point
splats onto the ``d + 1`` vertices of its simplex with barycentric weights. The blur is one
pass per lattice direction with weights ``(0.5, 1, 0.5)``, and slicing scales by
``1 / (1 + 2^-d)``.

The lattice is built once per image and kernel (:class:`Lattice`) and then filters any
number of channels, any number of times. The points are cut into a fixed number of
contiguous blocks (:func:`point_blocks`, set by the number of points, never by the thread
count), and everything runs in parallel over blocks or vertices:

* the build embeds each block's points and numbers the vertices it touches in a hash
  table of its own; a short serial merge then gives every vertex its global index in
  order of first appearance (the numbering a serial build would give);
* the splat scatters each block's points into the block's own rows (one row per vertex the
  block touches) and then sums, for each vertex, the rows of the blocks that touch it, in
  block order.

So every output is the same to the last bit for any number of threads.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ..utils._parallel import block_launches, serialized_launches

# Points are processed in at most this many contiguous blocks, and at most one block per
# this many points: sums over the points run block by block and then over the blocks in
# order, so their bits never depend on the thread count.
MAX_BLOCKS = 16
MIN_BLOCK_POINTS = 4096
# Simplices remembered per block while numbering the vertices (2^bits lines).
_SIMPLEX_CACHE_BITS = 12
_SIMPLEX_CACHE = 1 << _SIMPLEX_CACHE_BITS


@numba.njit(cache=True, nogil=True)
def point_blocks(n):
    """The number of blocks ``n`` points are cut into: fixed by ``n``, not the thread count
    (callable from Python and from numba kernels)."""
    return max(1, min(MAX_BLOCKS, n // MIN_BLOCK_POINTS))


# --------------------------------------------------------------------------- embedding


@numba.njit(cache=True, nogil=True, inline="always")
def _embed_point(f, scale, elevated, rem0, rank, bary):
    """One point's remainder-0 lattice point, simplex ranks and barycentric weights.

    ``f`` is its (d,) feature row; ``rem0``, ``rank`` (d + 1,) and ``bary`` (d + 2,) are
    written (``bary[d + 1]`` is scratch).
    """
    d = f.shape[0]
    down = np.float32(1.0 / (d + 1))
    up = np.float32(d + 1)
    sm = np.float32(0.0)
    for j in range(d, 0, -1):
        cf = f[j - 1] * scale[j - 1]
        elevated[j] = sm - np.float32(j) * cf
        sm += cf
    elevated[0] = sm
    total = np.float32(0.0)
    for i in range(d + 1):
        v = np.rint(down * elevated[i])
        rem0[i] = np.int32(v * up)
        total += v
    for i in range(d + 1):
        rank[i] = 0
    for i in range(d):
        di = elevated[i] - np.float32(rem0[i])
        for j in range(i + 1, d + 1):
            if di < elevated[j] - np.float32(rem0[j]):
                rank[i] += 1
            else:
                rank[j] += 1
    s = np.int32(total)
    for i in range(d + 1):
        rank[i] += s
        if rank[i] < 0:
            rank[i] += d + 1
            rem0[i] += d + 1
        elif rank[i] > d:
            rank[i] -= d + 1
            rem0[i] -= d + 1
    for i in range(d + 2):
        bary[i] = 0.0
    for i in range(d + 1):
        v = (elevated[i] - np.float32(rem0[i])) * down
        bary[d - rank[i]] += v
        bary[d - rank[i] + 1] -= v
    bary[0] += np.float32(1.0) + bary[d + 1]


@numba.njit(cache=True, nogil=True, inline="always")
def _corner_key(rem0, rank, r, key):
    """The lattice key of simplex corner ``r`` (0..d) of a point, into ``key`` (d,)."""
    d = key.shape[0]
    for i in range(d):
        key[i] = rem0[i] + (r if rank[i] <= d - r else r - (d + 1))


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


@block_launches
@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _block_vertices(features, n_blocks, rem0, rank, bary, local, first, counts):
    """Embed every point and number, block by block, the lattice vertices its simplex
    touches.

    Writes per point ``rem0``, ``rank`` (N, d + 1) and the barycentric weights ``bary``
    (N, d + 1), and ``local[k, r]``, the index of corner ``r``'s vertex among the distinct
    vertices of point ``k``'s block, numbered in order of first appearance. For that
    block's ``l``-th vertex, ``first[lo (d + 1) + l]`` is the flat index ``k (d + 1) + r``
    of its first appearance (``lo`` the block's first point); ``counts[b]`` is the number
    of distinct vertices of block ``b``. Each block has a hash table of its own.
    """
    n, d = features.shape
    dp1 = d + 1
    scale = np.empty(d, np.float32)
    inv_std = np.float32(math.sqrt(2.0 / 3.0) * dp1)
    for i in range(d):
        scale[i] = np.float32(1.0 / math.sqrt((i + 2) * (i + 1))) * inv_std
    for b in prange(n_blocks):
        lo = b * n // n_blocks
        hi = (b + 1) * n // n_blocks
        elevated = np.empty(dp1, np.float32)
        bar = np.empty(d + 2, np.float32)
        key = np.empty(d, np.int32)
        capacity = 1024
        table = np.full(capacity, -1, np.int32)
        keys = np.empty((capacity // 2 + 1, d), np.int32)
        filled = 0
        # The simplices met lately (a direct-mapped cache: a simplex is its remainder-0
        # point and ranks), so that a simplex seen a row of pixels ago costs one lookup,
        # not d + 1. It only short-cuts lookups: the numbering is the same without it.
        seen_simplex = np.full((_SIMPLEX_CACHE, 2 * dp1), -(2**31), np.int32)
        seen_local = np.empty((_SIMPLEX_CACHE, dp1), np.int32)
        for k in range(lo, hi):
            _embed_point(features[k], scale, elevated, rem0[k], rank[k], bar)
            for i in range(dp1):
                bary[k, i] = bar[i]
            if k > lo:
                # Neighbouring points often fall in the same simplex: reuse its vertices.
                same = True
                for i in range(dp1):
                    if rem0[k, i] != rem0[k - 1, i] or rank[k, i] != rank[k - 1, i]:
                        same = False
                        break
                if same:
                    for r in range(dp1):
                        local[k, r] = local[k - 1, r]
                    continue
            h = np.uint64(2166136261)
            for i in range(dp1):
                v = np.uint64(np.int64(rem0[k, i] + (rank[k, i] << 24)) & 0xFFFFFFFF)
                h = ((h ^ v) * np.uint64(16777619)) & np.uint64(0xFFFFFFFF)
            line = np.int64(h >> np.uint64(32 - _SIMPLEX_CACHE_BITS))
            hit = True
            for i in range(dp1):
                if (seen_simplex[line, i] != rem0[k, i]
                        or seen_simplex[line, dp1 + i] != rank[k, i]):
                    hit = False
                    break
            if hit:
                for r in range(dp1):
                    local[k, r] = seen_local[line, r]
                continue
            for i in range(dp1):
                seen_simplex[line, i] = rem0[k, i]
                seen_simplex[line, dp1 + i] = rank[k, i]
            for r in range(dp1):
                _corner_key(rem0[k], rank[k], r, key)
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
                    first[lo * dp1 + filled] = k * dp1 + r
                    filled += 1
                local[k, r] = table[slot]
                seen_local[line, r] = table[slot]
        counts[b] = filled


@numba.njit(cache=True, nogil=True)
def _merge_blocks(rem0, rank, first, counts):
    """Give the blocks' vertices global indices, in order of first appearance.

    Returns the vertex keys (M, d), the global hash table, M, the first accumulator row of
    each block ``row_base`` (B + 1,) (block ``b``'s ``l``-th vertex owns row
    ``row_base[b] + l``) and ``row_vertex`` (rows,), the global vertex of each row.
    """
    n, dp1 = rem0.shape
    d = dp1 - 1
    n_blocks = counts.shape[0]
    row_base = np.empty(n_blocks + 1, np.int32)
    rows = 0
    for b in range(n_blocks):
        row_base[b] = rows
        rows += counts[b]
    row_base[n_blocks] = rows
    capacity = 64
    while capacity < 2 * rows:
        capacity *= 2
    mask = capacity - 1
    table = np.full(capacity, -1, np.int32)
    keys = np.empty((max(rows, 1), d), np.int32)
    row_vertex = np.empty(rows, np.int32)
    key = np.empty(d, np.int32)
    m = 0
    for b in range(n_blocks):
        lo = b * n // n_blocks
        for j in range(counts[b]):
            f = first[lo * dp1 + j]
            k = f // dp1
            _corner_key(rem0[k], rank[k], f - k * dp1, key)
            slot = _find(table, keys, key, d, mask)
            if table[slot] < 0:
                keys[m] = key
                table[slot] = m
                m += 1
            row_vertex[row_base[b] + j] = table[slot]
    return keys[:m].copy(), table, m, row_base, row_vertex


@block_launches
@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _global_offsets(local, row_base, row_vertex, offsets):
    """Turn ``local`` into accumulator rows (in place) and write the global vertex of
    every corner into ``offsets``."""
    n, dp1 = local.shape
    n_blocks = row_base.shape[0] - 1
    for b in prange(n_blocks):
        base = row_base[b]
        for k in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            for r in range(dp1):
                a = local[k, r] + base
                local[k, r] = a
                offsets[k, r] = row_vertex[a]


@numba.njit(cache=True, nogil=True)
def _rows_of_vertices(row_vertex, n_lattice):
    """``start`` (M + 1,) and ``rows`` (R,): vertex ``p``'s accumulator rows are
    ``rows[start[p]:start[p + 1]]``, in block order (a stable counting sort)."""
    start = np.zeros(n_lattice + 1, np.int32)
    for a in range(row_vertex.shape[0]):
        start[row_vertex[a] + 1] += 1
    for p in range(n_lattice):
        start[p + 1] += start[p]
    fill = start[:n_lattice].copy()
    rows = np.empty(row_vertex.shape[0], np.int32)
    for a in range(row_vertex.shape[0]):
        p = row_vertex[a]
        rows[fill[p]] = a
        fill[p] += 1
    return start, rows


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


@block_launches
@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _scatter(acc_rows, row_base, weights, values, acc):
    """``acc[acc_rows[k, r]] += weights[k, r] * values[k]``, each block of points into
    its own rows (zeroed first): no two threads write the same row."""
    n, dp1 = acc_rows.shape
    c_dim = values.shape[1]
    n_blocks = row_base.shape[0] - 1
    for b in prange(n_blocks):
        for a in range(row_base[b], row_base[b + 1]):
            for ch in range(c_dim):
                acc[a, ch] = np.float32(0.0)
        for k in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            for r in range(dp1):
                a = acc_rows[k, r]
                w = weights[k, r]
                for ch in range(c_dim):
                    acc[a, ch] += w * values[k, ch]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _gather_rows(acc, start, rows, out):
    """``out[p] = sum of acc[rows[start[p]:start[p + 1]]]`` in that order: the lattice
    values ``(M + 1, C)`` from the blocks' rows; the last row (the missing neighbour)
    zero."""
    m = start.shape[0] - 1
    c_dim = acc.shape[1]
    for p in prange(m):
        for ch in range(c_dim):
            out[p, ch] = np.float32(0.0)
        for e in range(start[p], start[p + 1]):
            a = rows[e]
            for ch in range(c_dim):
                out[p, ch] += acc[a, ch]
    for ch in range(c_dim):
        out[m, ch] = np.float32(0.0)


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _blur(values, other, neighbours, reverse):
    """One pass of ``(0.5, 1, 0.5)`` along each of the ``d + 1`` lattice directions,
    ping-ponging between ``values`` and the workspace ``other`` (same shape); returns the
    one that holds the result.

    Each pass is a symmetric operator, so running them in ``reverse`` order applies the
    transpose of the whole blur (what the gradient of a filter needs).
    """
    n_dirs, m, _ = neighbours.shape
    c_dim = values.shape[1]
    for jj in range(n_dirs):
        j = n_dirs - 1 - jj if reverse else jj
        for p in prange(m):
            a = neighbours[j, p, 0]
            b = neighbours[j, p, 1]
            for ch in range(c_dim):
                other[p, ch] = values[p, ch] + np.float32(0.5) * (values[a, ch] + values[b, ch])
        for ch in range(c_dim):
            other[m, ch] = np.float32(0.0)
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
    n_blocks : int
        The blocks the points are cut into (:func:`point_blocks`).
    acc_rows : (N, d + 1) ndarray of int32
        The accumulator row each corner splats into: one row per (block, vertex) pair,
        ``row_base[b]:row_base[b + 1]`` being block ``b``'s.
    row_base : (n_blocks + 1,) ndarray of int32
    row_start, row_index : (M + 1,), (R,) ndarray of int32
        The rows of vertex ``p``: ``row_index[row_start[p]:row_start[p + 1]]``.
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
        self.n_blocks = int(point_blocks(n))
        rem0 = np.empty((n, d + 1), np.int32)
        rank = np.empty((n, d + 1), np.int32)
        self.weights = np.empty((n, d + 1), np.float32)
        local = np.empty((n, d + 1), np.int32)
        first = np.empty(n * (d + 1), np.int32)
        counts = np.empty(self.n_blocks, np.int32)
        _block_vertices(f, self.n_blocks, rem0, rank, self.weights, local, first, counts)
        keys, table, m, self.row_base, row_vertex = _merge_blocks(rem0, rank, first, counts)
        del rem0, rank, first
        self.offsets = np.empty((n, d + 1), np.int32)
        _global_offsets(local, self.row_base, row_vertex, self.offsets)
        self.acc_rows = local
        self.n_rows = int(row_vertex.shape[0])
        self.row_start, self.row_index = _rows_of_vertices(row_vertex, m)
        self.neighbours = _neighbours(keys, table, d)
        self.n_lattice = int(m)
        self.alpha = np.float32(1.0 / (1.0 + 2.0 ** (-d)))

    def scatter(self, weights, values, acc):
        """Each block's ``weights * values`` into its rows of ``acc`` (R, C)."""
        _scatter(self.acc_rows, self.row_base, weights, values, acc)

    def gather(self, acc, out):
        """The lattice values ``(M + 1, C)`` into ``out`` from the blocks' rows."""
        _gather_rows(acc, self.row_start, self.row_index, out)
        return out

    def splat(self, weights, values):
        """``(M + 1, C)`` float32: ``weights * values`` summed onto the vertices (the last
        row zero), the same to the last bit for any number of threads.

        Parameters
        ----------
        weights : (N, d + 1) ndarray of float32, C-contiguous
        values : (N, C) ndarray of float32, C-contiguous
        """
        v = np.ascontiguousarray(values, np.float32)
        acc = np.empty((self.n_rows, v.shape[1]), np.float32)
        self.scatter(np.ascontiguousarray(weights, np.float32), v, acc)
        return self.gather(acc, np.empty((self.n_lattice + 1, v.shape[1]), np.float32))

    def blur(self, values, *, reverse=False):
        """Blur ``(M + 1, C)`` lattice values (overwritten); returns the result."""
        return _blur(values, np.empty_like(values), self.neighbours, reverse)

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
        lat = self.blur(self.splat(sw, v), reverse=transpose)
        if out is None:
            out = np.zeros(v.shape, np.float32)
        _slice_add(self.offsets, np.ascontiguousarray(lw, np.float32), lat, out)
        return out
