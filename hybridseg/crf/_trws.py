"""Sequential tree-reweighted message passing (TRW-S, Kolmogorov 2006) on grid graphs.

Nodes are visited in index order (forward pass) and then in reverse (backward pass). At
node ``i`` the belief is ``theta_i + sum of its incoming messages``; the messages to the
neighbours later in the pass are recomputed as

    M_ij(x_j) = min_x [ gamma_i belief_i(x) - M_ji(x) + w_ij mu(x, x_j) ]   (minus its min)

with ``gamma_i = 1 / max(#earlier neighbours, #later neighbours)``, which makes the
updates those of TRW on monotonic chains, with a non-decreasing bound.

The messages define a reparametrisation of the energy: node terms ``theta_i + sum_j M_ji``
and edge terms ``w_ij mu(x_i, x_j) - M_ij(x_j) - M_ji(x_i)`` that add up to the same energy
for every labelling. Splitting it over the edges (each edge with a ``1 / degree`` share of
its end nodes' terms) and summing the minima of the pieces gives a lower bound on the
minimum energy, reported after each iteration; it is tight on trees.
Labels are decoded during each forward pass, node by node, given the labels already
chosen before it and the messages from the nodes after it; the best labelling seen is
kept.
"""

from __future__ import annotations

import numba
import numpy as np

from ._grid_graph import labelling_energy

__all__ = ["trws"]


def _incidence(n, edges):
    """CSR of incident edges per node: ``ptr``, edge ids, and whether the node is the
    edge's first end (``a``)."""
    ids = np.concatenate([np.arange(len(edges)), np.arange(len(edges))])
    ends = np.concatenate([edges[:, 0], edges[:, 1]])
    first = np.concatenate([np.ones(len(edges), np.bool_), np.zeros(len(edges), np.bool_)])
    order = np.argsort(ends, kind="stable")
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(ends, minlength=n), out=ptr[1:])
    return ptr, ids[order].astype(np.int64), first[order]


@numba.njit(cache=True, nogil=True)
def _min_convolve(h, w, mu, potts, out):
    """``out[y] = min_x h[x] + w mu[x, y]`` minus its minimum (O(K) for Potts)."""
    k = h.shape[0]
    if potts:
        hmin = h[0]
        for x in range(1, k):
            hmin = min(hmin, h[x])
        for y in range(k):
            out[y] = min(h[y], hmin + w)
    else:
        for y in range(k):
            best = np.inf
            for x in range(k):
                v = h[x] + w * mu[x, y]
                if v < best:
                    best = v
            out[y] = best
    m = out[0]
    for y in range(1, k):
        m = min(m, out[y])
    for y in range(k):
        out[y] -= m


@numba.njit(cache=True, nogil=True)
def _pass(cost, edges, w, mu, mu_t, potts, ptr, inc, first, gamma, to_b, to_a, forward,
          labels):
    """One TRW-S pass; in the forward pass also decode ``labels`` node by node."""
    n, k = cost.shape
    belief = np.empty(k, np.float64)
    h = np.empty(k, np.float64)
    out = np.empty(k, np.float64)
    for step in range(n):
        i = step if forward else n - 1 - step
        for x in range(k):
            belief[x] = cost[i, x]
        for p in range(ptr[i], ptr[i + 1]):
            e = inc[p]
            msg = to_a[e] if first[p] else to_b[e]  # incoming: towards i
            for x in range(k):
                belief[x] += msg[x]
        if forward:
            # Decode: the earlier neighbours' labels are fixed, the later ones speak
            # through their messages (already in ``belief``).
            for x in range(k):
                h[x] = belief[x]
            for p in range(ptr[i], ptr[i + 1]):
                e = inc[p]
                j = edges[e, 1] if first[p] else edges[e, 0]
                if j < i:
                    msg = to_a[e] if first[p] else to_b[e]
                    lj = labels[j]
                    for x in range(k):
                        pair = mu[x, lj] if first[p] else mu[lj, x]
                        h[x] += w[e] * pair - msg[x]
            best = 0
            for x in range(1, k):
                if h[x] < h[best]:
                    best = x
            labels[i] = best
        for p in range(ptr[i], ptr[i + 1]):
            e = inc[p]
            j = edges[e, 1] if first[p] else edges[e, 0]
            if (j > i) != forward:
                continue
            incoming = to_a[e] if first[p] else to_b[e]
            outgoing = to_b[e] if first[p] else to_a[e]
            for x in range(k):
                h[x] = gamma[i] * belief[x] - incoming[x]
            # From the edge's first end the pairwise term is mu[x_i, x_j], else mu[x_j, x_i].
            _min_convolve(h, w[e], mu if first[p] else mu_t, potts, out)
            for x in range(k):
                outgoing[x] = out[x]


@numba.njit(cache=True, nogil=True)
def _lower_bound(cost, edges, w, mu, to_b, to_a, ptr, inc, first):
    """Lower bound from the reparametrisation, split over the edges.

    Each edge gets its reparametrised term plus a ``1 / degree`` share of both end nodes'
    terms: these pieces add up to the energy of any labelling, so the sum of their minima
    bounds the minimum energy from below (isolated nodes add their own minimum). The
    split is tight on trees once the messages have converged.
    """
    n, k = cost.shape
    theta = cost.copy()
    for i in range(n):
        for p in range(ptr[i], ptr[i + 1]):
            e = inc[p]
            for x in range(k):
                theta[i, x] += to_a[e, x] if first[p] else to_b[e, x]
    total = 0.0
    for i in range(n):
        deg = ptr[i + 1] - ptr[i]
        if deg == 0:
            best = np.inf
            for x in range(k):
                best = min(best, theta[i, x])
            total += best
        else:
            for x in range(k):
                theta[i, x] /= deg
    for e in range(edges.shape[0]):
        a, b = edges[e, 0], edges[e, 1]
        best = np.inf
        for xa in range(k):
            for xb in range(k):
                v = theta[a, xa] + theta[b, xb] + w[e] * mu[xa, xb] - to_b[e, xb] - to_a[e, xa]
                best = min(best, v)
        total += best
    return total


def trws(cost, edges, w, mu, *, n_iter=10, tol=1e-7):
    """Minimise ``sum_i cost[i, x_i] + sum_e w_e mu[x_a, x_b]`` by TRW-S.

    Parameters
    ----------
    cost : (N, K) array_like
    edges : (E, 2) ndarray of int
        Each edge once; any compatibility ``mu`` (it need not be a metric).
    w : (E,) array_like
        Edge weights.
    mu : (K, K) array_like
    n_iter : int, default=10
        Forward and backward passes, at most.
    tol : float, default=1e-7
        Stop when the lower bound rises by less than ``tol`` times its size.

    Returns
    -------
    labels : (N,) ndarray of int64
        The lowest-energy labelling decoded.
    energies : list of float
        Energy of the best labelling so far, after each iteration.
    bounds : list of float
        Lower bound on the minimum energy after each iteration.
    """
    cost = np.ascontiguousarray(cost, np.float64)
    n, k = cost.shape
    edges = np.ascontiguousarray(edges, np.int64)
    w = np.ascontiguousarray(w, np.float64)
    mu = np.ascontiguousarray(mu, np.float64)
    mu_t = np.ascontiguousarray(mu.T)
    potts = bool(np.array_equal(mu, 1.0 - np.eye(k)))
    ptr, inc, first = _incidence(n, edges)
    other = np.where(first, edges[inc, 1], edges[inc, 0])
    node = np.repeat(np.arange(n), np.diff(ptr))
    before = np.bincount(node[other < node], minlength=n)
    after = np.bincount(node[other > node], minlength=n)
    gamma = 1.0 / np.maximum(np.maximum(before, after), 1)
    to_b = np.zeros((len(edges), k))
    to_a = np.zeros((len(edges), k))
    labels = np.zeros(n, np.int64)
    best_labels, best_energy = cost.argmin(1), np.inf
    energies, bounds = [], []
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1 for TRW-S (a pass gives its labels and "
                         f"bound), got {n_iter}")
    for _ in range(n_iter):
        _pass(cost, edges, w, mu, mu_t, potts, ptr, inc, first, gamma, to_b, to_a, True, labels)
        energy = labelling_energy(cost, labels, edges, w, mu)
        if energy < best_energy:
            best_energy, best_labels = energy, labels.copy()
        _pass(cost, edges, w, mu, mu_t, potts, ptr, inc, first, gamma, to_b, to_a, False, labels)
        bound = _lower_bound(cost, edges, w, mu, to_b, to_a, ptr, inc, first)
        energies.append(best_energy)
        bounds.append(bound)
        if len(bounds) > 1 and bounds[-1] - bounds[-2] <= tol * max(1.0, abs(bound)):
            break
    return best_labels, energies, bounds
