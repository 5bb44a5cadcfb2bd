"""TRW-S: its bound never exceeds the optimum, its labelling never beats it."""

import numpy as np
import pytest
from _oracles import brute_force_min, tiny_grid
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg.crf._expansion import alpha_expansion
from hybridseg.crf._grid_graph import grid_edges, labelling_energy
from hybridseg.crf._trws import trws


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 3), st.sampled_from([4, 8]),
       st.sampled_from(["potts", "random"]))
def test_bound_below_optimum_below_energy(seed, k, conn, kind):
    rng = np.random.default_rng(seed)
    cost, edges, dist = tiny_grid(rng, k, conn)
    w = rng.uniform(0.2, 2.0) / dist
    # Potts, or any matrix (asymmetric, negative entries): TRW-S needs no metric.
    mu = 1 - np.eye(k) if kind == "potts" else rng.uniform(-1, 2, (k, k))
    lab, energies, bounds = trws(cost, edges, w, mu, n_iter=30)
    best = brute_force_min(cost, edges, w, mu)
    e = labelling_energy(cost, lab, edges, w, mu)
    assert e == pytest.approx(energies[-1])
    assert max(bounds) <= best + 1e-7 <= e + 2e-7
    assert (np.diff(energies) <= 1e-12).all()


def test_tree_problems_are_solved_exactly(rng):
    # A chain is a tree: TRW-S is exact there, bound and energy meet.
    n, k = 9, 4
    cost = rng.uniform(0, 3, (n, k))
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    mu = rng.uniform(0, 2, (k, k))
    w = np.ones(n - 1)
    _, energies, bounds = trws(cost, edges, w, mu, n_iter=5)
    assert energies[-1] == pytest.approx(bounds[-1], abs=1e-9)


def test_close_to_expansion_on_a_larger_potts_grid(rng):
    h, w_, k = 30, 40, 4
    truth = rng.integers(0, k, (3, 4)).repeat(10, 0).repeat(10, 1)
    cost = (1 - np.eye(k)[truth]) * 3 + rng.uniform(0, 5, (h, w_, k))
    edges, _ = grid_edges((h, w_), 4)
    wts = np.full(len(edges), 2.0)
    mu = 1 - np.eye(k)
    _, energies, bounds = trws(cost.reshape(-1, k), edges, wts, mu, n_iter=30)
    _, e_exp = alpha_expansion(cost.reshape(-1, k), edges, wts, mu)
    assert bounds[-1] <= min(energies[-1], e_exp[-1]) + 1e-6
    assert energies[-1] <= 1.01 * e_exp[-1]
    # The gap closes to a fraction of a percent on such problems.
    assert (energies[-1] - bounds[-1]) / abs(bounds[-1]) < 0.01


def test_zero_passes_are_refused_with_a_reason():
    edges, w = grid_edges((2, 3), 4)
    cost = np.zeros((6, 2))
    with pytest.raises(ValueError, match="n_iter must be at least 1 for TRW-S"):
        trws(cost, edges, w, np.ones((2, 2)) - np.eye(2), n_iter=0)
