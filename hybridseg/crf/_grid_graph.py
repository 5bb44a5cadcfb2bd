"""Grid graphs for the grid CRF: neighbour edges, their weights, energies, ICM, mean field.

A grid CRF's energy is ``E(x) = sum_i U_i(x_i) + sum_(i,j) w_ij mu(x_i, x_j)`` over the
edges of a 4- or 8-connected image grid (6- or 26-connected for volumes). The edges are
kept as an ``(E, 2)`` list of flat pixel indices with one weight each, and, for the
sweeping algorithms, as a symmetric CSR adjacency (``ptr``, ``nbr``, ``wgt``): every edge
appears once from each end.

Edge weights follow Boykov & Jolly (2001): ``weight / dist`` for Potts, and
``weight * exp(-beta |I_i - I_j|^2) / dist`` for contrast-sensitive Potts, with
``beta = 1 / (2 <|I_i - I_j|^2>)`` over the edges by default (Rother et al., 2004) and
``dist`` the length of the edge in pixels (1, sqrt 2, sqrt 3).
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
from numba import prange

from ..utils._parallel import serialized_launches

__all__ = [
    "adjacency",
    "contrast_beta",
    "edge_weights",
    "grid_edges",
    "icm",
    "labelling_energy",
    "mean_field_grid",
]


def _offsets(ndim, connectivity):
    """Half of the neighbour offsets (one of each +/- pair) for a connectivity."""
    full = {2: {4: 1, 8: 2}, 3: {6: 1, 26: 3}}
    if ndim not in full or connectivity not in full[ndim]:
        allowed = {2: "4 or 8", 3: "6 or 26"}.get(ndim, "4, 8 (2-D) or 6, 26 (3-D)")
        raise ValueError(f"connectivity must be {allowed} for {ndim}-D grids, got "
                         f"{connectivity!r}")
    max_nonzero = full[ndim][connectivity]
    out = []
    for off in itertools.product((-1, 0, 1), repeat=ndim):
        nz = sum(o != 0 for o in off)
        if nz == 0 or nz > max_nonzero:
            continue
        # Keep the offset whose first non-zero entry is positive: one per +/- pair.
        first = next(o for o in off if o != 0)
        if first > 0:
            out.append(off)
    return out


def grid_edges(spatial_shape, connectivity):
    """Edges of a grid, as flat index pairs with their lengths.

    Parameters
    ----------
    spatial_shape : tuple of int
        ``(H, W)`` or ``(D, H, W)``.
    connectivity : int
        4 or 8 in 2-D; 6 or 26 in 3-D.

    Returns
    -------
    edges : (E, 2) ndarray of int64
        Flat (C-order) indices of the two pixels of each edge, each edge once.
    dist : (E,) ndarray of float64
        Euclidean length of each edge, in pixels.
    """
    shape = tuple(int(s) for s in spatial_shape)
    index = np.arange(int(np.prod(shape))).reshape(shape)
    pairs, dists = [], []
    for off in _offsets(len(shape), connectivity):
        src = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(off, shape))
        dst = tuple(slice(max(0, o), s - max(0, -o)) for o, s in zip(off, shape))
        a, b = index[src].ravel(), index[dst].ravel()
        pairs.append(np.stack([a, b], 1))
        dists.append(np.full(a.size, np.sqrt(sum(o * o for o in off))))
    return np.concatenate(pairs).astype(np.int64), np.concatenate(dists)


def _squared_differences(pixels, edges):
    flat = np.asarray(pixels, np.float64)
    flat = flat.reshape(flat.shape[0], -1)
    diff = flat[edges[:, 0]] - flat[edges[:, 1]]
    return np.sum(diff * diff, axis=1)


def _beta_from(sq):
    mean = float(sq.mean()) if sq.size else 0.0
    return 0.0 if mean == 0.0 else 1.0 / (2.0 * mean)


def contrast_beta(pixels, edges):
    """``1 / (2 <|I_i - I_j|^2>)`` over the edges (0 for a constant image).

    Parameters
    ----------
    pixels : (N,) or (N, C) array_like
        Pixel values, flattened in C order.
    edges : (E, 2) ndarray of int
    """
    return _beta_from(_squared_differences(pixels, edges))


def edge_weights(pixels, edges, dist, *, pairwise, weight, beta="auto", beta_scale=1.0):
    """Weight of every edge.

    Parameters
    ----------
    pixels : (N,) or (N, C) array_like
        Pixel values, flattened in C order (only read for ``pairwise="contrast"``).
    edges : (E, 2) ndarray of int
    dist : (E,) ndarray
        Edge lengths.
    pairwise : {"potts", "contrast"}
    weight : float
    beta : "auto" or float
        The contrast parameter; "auto" is :func:`contrast_beta`.
    beta_scale : float, default=1.0
        Factor on ``beta`` (what ``GridCRF.fit`` tunes).

    Returns
    -------
    w : (E,) ndarray of float64
    beta : float or None
        The contrast parameter used (None for Potts).
    """
    if pairwise == "potts":
        return weight / dist, None
    sq = _squared_differences(pixels, edges)
    beta = (_beta_from(sq) if isinstance(beta, str) else float(beta)) * beta_scale
    return weight * np.exp(-beta * sq) / dist, beta


def adjacency(n, edges, w):
    """Symmetric CSR adjacency of the edges: ``ptr (n+1,)``, ``nbr``, ``wgt`` (2E each)."""
    a = np.concatenate([edges[:, 0], edges[:, 1]])
    b = np.concatenate([edges[:, 1], edges[:, 0]])
    ww = np.concatenate([w, w])
    order = np.argsort(a, kind="stable")
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=ptr[1:])
    return ptr, np.ascontiguousarray(b[order]), np.ascontiguousarray(ww[order])


def labelling_energy(cost, labels, edges, w, mu):
    """``sum_i cost[i, x_i] + sum_e w_e mu[x_a, x_b]`` in float64.

    Parameters
    ----------
    cost : (N, K) ndarray
    labels : (N,) ndarray of int
    edges : (E, 2) ndarray of int
    w : (E,) ndarray
    mu : (K, K) ndarray

    Returns
    -------
    energy : float
    """
    cost = np.asarray(cost, np.float64)
    labels = np.asarray(labels)
    unary = np.take_along_axis(cost, labels[:, None], 1).sum()
    pair = np.sum(np.asarray(w, np.float64) * np.asarray(mu, np.float64)[
        labels[edges[:, 0]], labels[edges[:, 1]]])
    return float(unary + pair)


@numba.njit(cache=True, nogil=True)
def _icm(cost, ptr, nbr, wgt, mu, labels, max_sweeps):
    """Sweep the pixels in order, giving each its best label given its neighbours', until
    no label changes (or ``max_sweeps``). Each move lowers the energy or keeps it."""
    n, k = cost.shape
    local = np.empty(k, np.float64)
    sweeps = 0
    for sweep in range(max_sweeps):
        sweeps = sweep + 1
        changed = 0
        for i in range(n):
            for c in range(k):
                local[c] = cost[i, c]
            for e in range(ptr[i], ptr[i + 1]):
                lj = labels[nbr[e]]
                we = wgt[e]
                for c in range(k):
                    local[c] += we * mu[c, lj]
            best = labels[i]
            best_val = local[best]
            for c in range(k):
                if local[c] < best_val:
                    best_val = local[c]
                    best = c
            if best != labels[i]:
                labels[i] = best
                changed += 1
        if changed == 0:
            break
    return sweeps


def icm(cost, ptr, nbr, wgt, mu, labels=None, max_sweeps=100):
    """Iterated conditional modes from ``labels`` (default: the unary minimum).

    Returns
    -------
    labels : (N,) ndarray of int64
    sweeps : int
    """
    cost = np.ascontiguousarray(cost, np.float64)
    start = cost.argmin(1) if labels is None else labels
    labels = np.array(start, dtype=np.int64)
    sweeps = _icm(cost, ptr, nbr, np.ascontiguousarray(wgt, np.float64),
                  np.ascontiguousarray(mu, np.float64), labels, int(max_sweeps))
    return labels, sweeps


@numba.njit(cache=True, nogil=True)
def _mean_field_sweeps(cost, ptr, nbr, wgt, mu, q, n_sweeps):
    """Sequential (in place) mean-field updates: each lowers KL(Q || P)."""
    n, k = cost.shape
    local = np.empty(k, np.float64)
    for _ in range(n_sweeps):
        for i in range(n):
            for c in range(k):
                local[c] = -cost[i, c]
            for e in range(ptr[i], ptr[i + 1]):
                j = nbr[e]
                we = wgt[e]
                for c in range(k):
                    acc = 0.0
                    for c2 in range(k):
                        acc += mu[c, c2] * q[j, c2]
                    local[c] -= we * acc
            mx = local[0]
            for c in range(1, k):
                mx = max(mx, local[c])
            s = 0.0
            for c in range(k):
                local[c] = np.exp(local[c] - mx)
                s += local[c]
            for c in range(k):
                q[i, c] = local[c] / s


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _softmax_neg(cost, q):
    n, k = cost.shape
    for i in prange(n):
        mn = cost[i, 0]
        for c in range(1, k):
            mn = min(mn, cost[i, c])
        s = 0.0
        for c in range(k):
            q[i, c] = np.exp(mn - cost[i, c])
            s += q[i, c]
        for c in range(k):
            q[i, c] /= s


def mean_field_grid(cost, ptr, nbr, wgt, mu, n_sweeps):
    """Marginals ``Q (N, K)`` after ``n_sweeps`` sequential mean-field sweeps from the
    unary's softmax (float64)."""
    cost = np.ascontiguousarray(cost, np.float64)
    q = np.empty_like(cost)
    _softmax_neg(cost, q)
    _mean_field_sweeps(cost, ptr, nbr, np.ascontiguousarray(wgt, np.float64),
                       np.ascontiguousarray(mu, np.float64), q, int(n_sweeps))
    return q
