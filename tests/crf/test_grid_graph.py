"""Grid graphs: edges, weights, energy, ICM and mean field against numpy oracles."""

import numpy as np
import pytest
from _oracles import brute_force, grid_energy, kl_free_energy
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg.crf._grid_graph import (
    adjacency,
    contrast_beta,
    edge_weights,
    grid_edges,
    icm,
    labelling_energy,
    mean_field_grid,
)


@pytest.mark.parametrize(("shape", "conn", "n_edges"), [
    ((3, 4), 4, 3 * 3 + 2 * 4),
    ((3, 4), 8, 3 * 3 + 2 * 4 + 2 * 2 * 3),
    ((2, 3, 4), 6, 2 * 3 * 3 + 2 * 2 * 4 + 1 * 3 * 4),
    ((2, 3, 4), 26, None),
])
def test_edges_are_the_grid_neighbours(shape, conn, n_edges):
    edges, dist = grid_edges(shape, conn)
    coords = np.stack(np.unravel_index(np.arange(int(np.prod(shape))), shape), 1)
    delta = np.abs(coords[edges[:, 0]] - coords[edges[:, 1]])
    assert (delta.max(1) == 1).all()
    np.testing.assert_allclose(dist, np.sqrt((delta ** 2).sum(1)))
    # Each unordered pair once.
    pairs = {tuple(sorted(e)) for e in edges.tolist()}
    assert len(pairs) == len(edges)
    if n_edges is not None:
        assert len(edges) == n_edges
    else:  # 26-connectivity: every pair at Chebyshev distance 1
        n = len(coords)
        cheb = np.abs(coords[:, None] - coords[None]).max(-1)
        assert len(edges) == (np.count_nonzero(cheb == 1)) // 2 and n == 24


def test_bad_connectivity():
    with pytest.raises(ValueError, match="4 or 8"):
        grid_edges((3, 3), 6)
    with pytest.raises(ValueError, match="6 or 26"):
        grid_edges((2, 3, 3), 8)


def test_contrast_weights(rng):
    image = rng.uniform(0, 255, (5, 6, 3))
    edges, dist = grid_edges((5, 6), 8)
    pixels = image.reshape(-1, 3)
    w, beta = edge_weights(pixels, edges, dist, pairwise="contrast", weight=2.0)
    sq = ((pixels[edges[:, 0]] - pixels[edges[:, 1]]) ** 2).sum(1)
    assert beta == pytest.approx(1 / (2 * sq.mean()))
    assert beta == pytest.approx(contrast_beta(pixels, edges))
    np.testing.assert_allclose(w, 2.0 * np.exp(-beta * sq) / dist)
    wp, none = edge_weights(pixels, edges, dist, pairwise="potts", weight=2.0)
    assert none is None
    np.testing.assert_allclose(wp, 2.0 / dist)
    assert contrast_beta(np.zeros((30, 1)), grid_edges((5, 6), 4)[0]) == 0.0


def test_labelling_energy_is_the_oracle_energy(rng):
    edges, dist = grid_edges((4, 5), 8)
    cost = rng.normal(0, 1, (20, 3))
    w = rng.uniform(0, 2, len(edges)) / dist
    mu = rng.uniform(-1, 2, (3, 3))  # asymmetric: mu[x_a, x_b] with a the edge's first end
    labels = rng.integers(0, 3, (10, 20))
    expected = grid_energy(cost, labels, edges, w, mu)
    for lab, e in zip(labels, expected):
        assert labelling_energy(cost, lab, edges, w, mu) == pytest.approx(e, rel=1e-12)


def test_adjacency_lists_each_edge_from_both_ends(rng):
    edges, _ = grid_edges((4, 5), 8)
    w = rng.random(len(edges))
    ptr, nbr, wgt = adjacency(20, edges, w)
    dense = np.zeros((20, 20))
    for i in range(20):
        dense[i, nbr[ptr[i]:ptr[i + 1]]] = wgt[ptr[i]:ptr[i + 1]]
    expected = np.zeros((20, 20))
    expected[edges[:, 0], edges[:, 1]] = w
    expected += expected.T
    np.testing.assert_array_equal(dense, expected)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.sampled_from([4, 8]),
       st.floats(0.0, 3.0))
def test_icm_never_raises_energy_and_stops_at_a_local_minimum(seed, k, conn, weight):
    rng = np.random.default_rng(seed)
    shape = (6, 7)
    cost = rng.uniform(0, 4, (42, k))
    edges, dist = grid_edges(shape, conn)
    w = weight / dist
    mu = 1 - np.eye(k)
    ptr, nbr, wgt = adjacency(42, edges, w)
    start = rng.integers(0, k, 42)
    lab, _ = icm(cost, ptr, nbr, wgt, mu, labels=start)
    assert labelling_energy(cost, lab, edges, w, mu) <= labelling_energy(
        cost, start, edges, w, mu) + 1e-9
    # No single-pixel change lowers the energy.
    e = labelling_energy(cost, lab, edges, w, mu)
    for i in rng.choice(42, 8, replace=False):
        for c in range(k):
            other = lab.copy()
            other[i] = c
            assert labelling_energy(cost, other, edges, w, mu) >= e - 1e-9


def test_icm_reaches_the_optimum_without_pairwise_and_is_bounded_by_brute_force(rng):
    cost = rng.uniform(0, 3, (6, 2))
    edges, dist = grid_edges((2, 3), 4)
    mu = 1 - np.eye(2)
    for weight in (0.0, 1.0):
        w = weight / dist
        ptr, nbr, wgt = adjacency(6, edges, w)
        lab, _ = icm(cost, ptr, nbr, wgt, mu)
        best, _ = brute_force(cost, edges, w, mu)
        e = labelling_energy(cost, lab, edges, w, mu)
        assert e >= best - 1e-9
        if weight == 0.0:
            assert e == pytest.approx(best)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.floats(0.1, 3.0))
def test_sequential_mean_field_lowers_the_free_energy(seed, k, weight):
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0, 3, (30, k))
    edges, dist = grid_edges((5, 6), 8)
    w = weight / dist
    mu = rng.uniform(0, 2, (k, k))
    mu = (mu + mu.T) / 2  # any symmetric compatibility: sequential updates still descend
    ptr, nbr, wgt = adjacency(30, edges, w)
    energies = [kl_free_energy(cost, mean_field_grid(cost, ptr, nbr, wgt, mu, s), edges, w, mu)
                for s in range(5)]
    assert (np.diff(energies) <= 1e-9).all(), energies
    q = mean_field_grid(cost, ptr, nbr, wgt, mu, 3)
    np.testing.assert_allclose(q.sum(1), 1)
    # Zero weights: the unary's softmax.
    ptr0, nbr0, wgt0 = adjacency(30, edges, 0 * w)
    q0 = mean_field_grid(cost, ptr0, nbr0, wgt0, mu, 3)
    e = np.exp(-cost)
    np.testing.assert_allclose(q0, e / e.sum(1, keepdims=True))
