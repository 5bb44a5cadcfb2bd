"""Alpha-expansion: the factor-2 bound against brute force, monotone energy, gco, errors."""

import numpy as np
import pytest
from _oracles import brute_force_min, tiny_grid
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg.crf._expansion import alpha_expansion, check_metric
from hybridseg.crf._grid_graph import grid_edges, labelling_energy


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 3), st.sampled_from([4, 8]),
       st.floats(0.1, 3.0))
def test_within_factor_two_of_the_optimum_on_tiny_grids(seed, k, conn, weight):
    rng = np.random.default_rng(seed)
    cost, edges, dist = tiny_grid(rng, k, conn)
    w = weight / dist
    mu = 1 - np.eye(k)
    lab, energies = alpha_expansion(cost, edges, w, mu)
    best = brute_force_min(cost, edges, w, mu)
    e = labelling_energy(cost, lab, edges, w, mu)
    assert e == pytest.approx(energies[-1])
    assert best - 1e-9 <= e <= 2 * best + 1e-9
    # Energies never rise from cycle to cycle.
    assert (np.diff(energies) <= 1e-9).all()


def test_binary_potts_expansion_is_exact(rng):
    cost = rng.uniform(0, 3, (12, 2))
    edges, dist = grid_edges((3, 4), 8)
    w = 1.3 / dist
    mu = 1 - np.eye(2)
    lab, _ = alpha_expansion(cost, edges, w, mu)
    assert labelling_energy(cost, lab, edges, w, mu) == pytest.approx(
        brute_force_min(cost, edges, w, mu))


def test_truncated_linear_metric(rng):
    k = 4
    levels = np.arange(k)
    mu = np.minimum(np.abs(levels[:, None] - levels[None]), 2).astype(float)
    check_metric(mu)
    cost = rng.uniform(0, 4, (8, k))
    edges, dist = grid_edges((2, 4), 4)
    _, energies = alpha_expansion(cost, edges, 0.8 / dist, mu)
    best = brute_force_min(cost, edges, 0.8 / dist, mu)
    # Bound 2 max(mu) / min nonzero mu = 4 for this metric.
    assert best - 1e-9 <= energies[-1] <= 4 * best + 1e-9


def test_matches_gco_on_a_random_grid(rng):
    gco = pytest.importorskip("gco")
    h, w_, k = 40, 50, 5
    truth = rng.integers(0, k, (h // 10, w_ // 10)).repeat(10, 0).repeat(10, 1)
    cost = ((1 - np.eye(k)[truth]) * 6 + rng.integers(0, 10, (h, w_, k))).astype(np.int32)
    mu = 1 - np.eye(k)
    lab_g = gco.cut_grid_graph_simple(cost, (3 * mu).astype(np.int32), connect=4,
                                      algorithm="expansion")
    edges, _ = grid_edges((h, w_), 4)
    wts = np.full(len(edges), 3.0)
    _, energies = alpha_expansion(cost.reshape(-1, k), edges, wts, mu)
    e_gco = labelling_energy(cost.reshape(-1, k), lab_g.ravel(), edges, wts, mu)
    assert energies[-1] <= 1.01 * e_gco


def test_non_metric_compatibility_is_refused_with_alternatives():
    with pytest.raises(ValueError, match=r"swap.*trws"):
        check_metric(np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 1.0], [5.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="diagonal"):
        check_metric(np.ones((2, 2)))
    with pytest.raises(ValueError, match="symmetric"):
        check_metric(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="negative"):
        check_metric(np.array([[0.0, -1.0], [-1.0, 0.0]]))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 3), st.floats(0.1, 3.0))
def test_swap_never_raises_energy_and_is_bounded(seed, k, weight):
    from hybridseg.crf._expansion import alpha_beta_swap

    rng = np.random.default_rng(seed)
    shape = (2, 4) if k == 3 else (3, 4)
    n = shape[0] * shape[1]
    cost = rng.uniform(0, 3, (n, k))
    edges, dist = grid_edges(shape, 8)
    w = weight / dist
    mu = rng.uniform(0.2, 2.0, (k, k))
    mu = (mu + mu.T) / 2
    np.fill_diagonal(mu, 0.0)  # a semi-metric, not always a metric
    start = rng.integers(0, k, n)
    lab, energies = alpha_beta_swap(cost, edges, w, mu, labels=start)
    assert (np.diff(energies) <= 1e-9).all()
    e = labelling_energy(cost, lab, edges, w, mu)
    assert e <= labelling_energy(cost, start, edges, w, mu) + 1e-9
    assert e >= brute_force_min(cost, edges, w, mu) - 1e-9
    if k == 2:  # one swap move is the exact binary cut
        assert e == pytest.approx(brute_force_min(cost, edges, w, mu))


def test_swap_refuses_what_is_not_a_semimetric():
    from hybridseg.crf._expansion import check_semimetric

    with pytest.raises(ValueError, match="trws"):
        check_semimetric(np.array([[0.0, -1.0], [-1.0, 0.0]]))


# --------------------------------------------------------------------------- the engine
def potts_problem(rng, shape, k, weight, connectivity=4):
    truth = rng.integers(0, k, (shape[0] // 4 + 1, shape[1] // 4 + 1)).repeat(4, 0).repeat(4, 1)
    truth = truth[:shape[0], :shape[1]].ravel()
    cost = rng.uniform(0, 2, (truth.size, k)) + 1.5 * (1 - np.eye(k)[truth])
    edges, dist = grid_edges(shape, connectivity)
    return cost, edges, weight * rng.uniform(0.2, 1.0, len(edges)) / dist


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.sampled_from([4, 8]),
       st.floats(0.05, 4.0))
def test_same_labels_and_energies_as_the_move_by_move_oracle(seed, k, conn, weight):
    from _oracles import expansion_oracle

    rng = np.random.default_rng(seed)
    cost, edges, w = potts_problem(rng, (13, 17), k, weight, conn)
    levels = np.arange(k)
    for mu in (1 - np.eye(k), np.minimum(np.abs(levels[:, None] - levels), 2.0)):
        lab, energies = alpha_expansion(cost, edges, w, mu)
        ref, ref_energies = expansion_oracle(cost, edges, w, mu)
        np.testing.assert_array_equal(lab, ref)
        np.testing.assert_allclose(energies, ref_energies, rtol=1e-12)


def test_flows_kept_across_calls_change_nothing_but_the_time(rng):
    # One ExpansionFlows through several weights and cost sets, warm and cold starts, and
    # the one-slot fallback: the labels are the oracle's every time.
    from _oracles import expansion_oracle

    from hybridseg.crf._expansion import ExpansionFlows

    k = 5
    cost, edges, w = potts_problem(rng, (40, 50), k, 1.0)
    mu = 1 - np.eye(k)
    kept = ExpansionFlows(cost.shape[0], edges, k)
    one_slot = ExpansionFlows(cost.shape[0], edges, k, max_bytes=0)
    assert kept.flow.shape == (k, len(edges)) and one_slot.flow.shape == (1, len(edges))
    start = None
    for weight in (0.0, 0.3, 2.5, 0.8, 6.0):
        c = cost + rng.normal(0, 0.3, cost.shape) * (weight > 1)
        ref, _ = expansion_oracle(c, edges, weight * w, mu, labels=start)
        for state in (kept, one_slot, None):
            lab, _ = alpha_expansion(c, edges, weight * w, mu, labels=start, state=state)
            np.testing.assert_array_equal(lab, ref)
        start = ref


def test_flows_of_another_problem_are_refused(rng):
    from hybridseg.crf._expansion import ExpansionFlows

    cost, edges, w = potts_problem(rng, (8, 8), 3, 1.0)
    with pytest.raises(ValueError, match=r"state was made for \(N, E, K\)"):
        alpha_expansion(cost, edges, w, 1 - np.eye(3),
                        state=ExpansionFlows(cost.shape[0], edges, 4))

