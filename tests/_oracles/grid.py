"""Brute-force oracle shared by the grid CRF tests (tiny grids only)."""

import itertools

import numpy as np

from hybridseg.crf._grid_graph import labelling_energy


def brute_force(cost, edges, w, mu):
    """Minimum energy and a minimiser, by enumerating every labelling."""
    n, k = cost.shape
    best, arg = np.inf, None
    for lab in itertools.product(range(k), repeat=n):
        e = labelling_energy(cost, np.array(lab), edges, w, mu)
        if e < best:
            best, arg = e, np.array(lab)
    return best, arg


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
