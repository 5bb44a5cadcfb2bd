"""Oracles of the grid CRF kernels: labelling energies, their minimum by enumeration, the
grid mean field's free energy, minimum cuts by trying every cut (tiny graphs only), and
alpha-expansion one plain-numpy move at a time."""

import itertools

import numpy as np


def grid_energy(cost, labels, edges, w, mu):
    """``sum_i cost[i, x_i] + sum_e w_e mu[x_a, x_b]`` of one labelling ``x``, or of each
    row of ``labels`` when it is ``(L, N)``: the oracle of
    ``hybridseg.crf._grid_graph.labelling_energy``."""
    cost, mu = np.asarray(cost, np.float64), np.asarray(mu, np.float64)
    x = np.asarray(labels)
    edges = np.asarray(edges).reshape(-1, 2)
    unary = cost[np.arange(cost.shape[0]), x].sum(-1)
    pair = (np.asarray(w, np.float64) * mu[x[..., edges[:, 0]], x[..., edges[:, 1]]]).sum(-1)
    return unary + pair


def all_labellings(n, k):
    """Every labelling of ``n`` nodes with ``k`` labels: ``(k**n, n)`` ints."""
    return np.array(list(itertools.product(range(k), repeat=n)), np.int64).reshape(-1, n)


def brute_force(cost, edges, w, mu):
    """Minimum energy and a minimiser, by enumerating every labelling: the optimum that
    alpha-expansion, swap, TRW-S and ICM are held to."""
    n, k = np.shape(cost)
    x = all_labellings(n, k)
    energies = grid_energy(cost, x, edges, w, mu)
    best = int(np.argmin(energies))
    return float(energies[best]), x[best]


def brute_force_min(cost, edges, w, mu):
    """Minimum energy by enumeration."""
    return brute_force(cost, edges, w, mu)[0]


def tiny_grid(rng, k, connectivity):
    """A grid small enough for ``brute_force_min``: random costs ``(n, K)`` in [0, 3) on a
    2x4 (K = 3) or 3x4 grid, with its edges and their lengths."""
    from hybridseg.crf._grid_graph import grid_edges

    shape = (2, 4) if k == 3 else (3, 4)
    cost = rng.uniform(0, 3, (shape[0] * shape[1], k))
    edges, dist = grid_edges(shape, connectivity)
    return cost, edges, dist


def kl_free_energy(cost, q, edges, w, mu):
    """``sum_i <q_i, U_i> + sum_e w_e q_a^T mu q_b + sum_i <q_i, log q_i>``: the free energy
    that ``hybridseg.crf._grid_graph.mean_field_grid``'s sequential updates lower."""
    pair = np.einsum("e,ek,kl,el->", w, q[edges[:, 0]], mu, q[edges[:, 1]])
    return np.sum(q * cost) + pair + np.sum(q * np.log(np.maximum(q, 1e-300)))


def cut_value(source_cap, sink_cap, edges, w_forward, w_backward, sink_side):
    """Capacity of the s-t cut whose sink side is ``sink_side``: a node on the sink side
    cuts its arc from the source, one on the source side its arc to the sink, and an edge
    ``(a, b)`` its forward capacity when ``b`` alone is on the sink side, its backward one
    when ``a`` alone is."""
    t = np.asarray(sink_side, bool)
    edges = np.asarray(edges).reshape(-1, 2)
    a, b = t[edges[:, 0]], t[edges[:, 1]]
    return float(np.sum(source_cap[t]) + np.sum(sink_cap[~t])
                 + np.sum(w_forward[~a & b]) + np.sum(w_backward[a & ~b]))


def brute_min_cut(source_cap, sink_cap, edges, w_forward, w_backward):
    """Minimum cut capacity by trying every cut: the oracle of
    ``hybridseg.crf._maxflow.min_cut``'s flow."""
    sides = all_labellings(np.size(source_cap), 2).astype(bool)
    return min(cut_value(source_cap, sink_cap, edges, w_forward, w_backward, s) for s in sides)


def brute_binary_energy(cost0, cost1, edges, w):
    """Minimum binary Potts energy ``sum_i cost_{x_i}[i] + sum_e w_e [x_a != x_b]`` by
    enumeration: the oracle of ``hybridseg.crf._maxflow.binary_energy_min``."""
    cost = np.stack([cost0, cost1], 1)
    return brute_force_min(cost, edges, w, 1.0 - np.eye(2))


def expansion_oracle(cost, edges, w, mu, labels=None, max_cycles=20):
    """Alpha-expansion in plain numpy: every cycle tries every label, each move a fresh
    min cut (``hybridseg.crf._maxflow.min_cut``, itself held to brute force and
    PyMaxflow) of the two-label problem; a move is kept when it lowers the energy.
    Returns the labels and the energy after each cycle."""
    from hybridseg.crf._maxflow import min_cut

    x = (cost.argmin(1) if labels is None else np.asarray(labels)).astype(np.int64)
    n, k = cost.shape
    rows = np.arange(n)
    a, b = edges[:, 0], edges[:, 1]
    energy = grid_energy(cost, x, edges, w, mu)
    energies = [energy]
    for _ in range(max_cycles):
        improved = False
        for alpha in range(k):
            big_a, big_b = w * mu[x[a], x[b]], w * mu[x[a], alpha]
            big_c, big_d = w * mu[alpha, x[b]], w * mu[alpha, alpha]
            keep = cost[rows, x]
            switch = (cost[:, alpha] + np.bincount(a, big_c - big_a, n)
                      + np.bincount(b, big_d - big_c, n))
            low = np.minimum(keep, switch)
            kappa = np.maximum(big_b + big_c - big_a - big_d, 0.0)
            sink = min_cut(switch - low, keep - low, edges, kappa, np.zeros_like(kappa))[1]
            if not sink.any():
                continue
            proposal = np.where(sink, alpha, x)
            new = grid_energy(cost, proposal, edges, w, mu)
            if new < energy - 1e-9 * max(1.0, abs(energy)):
                x, energy, improved = proposal, new, True
        energies.append(energy)
        if not improved:
            break
    return x, energies
