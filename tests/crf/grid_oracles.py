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
