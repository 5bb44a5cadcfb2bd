"""Boykov-Kolmogorov min cut: brute force on tiny graphs, PyMaxflow on larger ones."""

import glob
import os
from pathlib import Path

import numpy as np
import pytest
from _oracles import brute_binary_energy, brute_min_cut, cut_value, grid_energy
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg.crf._grid_graph import grid_edges
from hybridseg.crf._maxflow import binary_energy_min, min_cut

SHARED = Path(os.environ.get("HYBRIDSEG_DATA", Path(__file__).parents[3] / "shared" / "data"))
POTTS = np.array([[0.0, 1.0], [1.0, 0.0]])


def energy(cost0, cost1, edges, w, labels):
    return grid_energy(np.stack([cost0, cost1], 1), labels, edges, w, POTTS)


def maxflow_reference(source_cap, sink_cap, edges, w_forward, w_backward):
    """PyMaxflow's flow and sink side, edge by edge (``add_edge`` with both capacities)."""
    maxflow = pytest.importorskip("maxflow")
    g = maxflow.Graph[float]()
    ids = g.add_grid_nodes((source_cap.size,))
    for (a, b), wf, wb in zip(edges, w_forward, w_backward):
        g.add_edge(int(a), int(b), float(wf), float(wb))
    g.add_grid_tedges(ids, source_cap, sink_cap)
    flow = g.maxflow()
    return flow, np.asarray(g.get_grid_segments(ids), bool)


def random_problem(rng, n, m, *, integer=False, sparsity=0.5):
    """Terminal capacities (some zero) and asymmetric edge capacities."""
    def draw(size, high):
        if integer:
            return rng.integers(0, high + 1, size).astype(np.float64)
        return rng.uniform(0, high, size) * (rng.random(size) < 1 - sparsity)
    return draw(n, 4), draw(n, 4), draw(m, 2), draw(m, 2)


def random_graph(seed, n, m):
    """An arbitrary graph (repeated edges, self-loops, both orientations of a pair) and
    its capacities: ``edges, source_cap, sink_cap, w_forward, w_backward``."""
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, n, (m, 2))
    return (edges, *random_problem(rng, n, m, integer=bool(seed % 2), sparsity=0.3))


# --------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("integer", [False, True])
def test_energy_matches_brute_force_on_tiny_grids(rng, connectivity, integer):
    edges, dist = grid_edges((3, 4), connectivity)
    for _ in range(25):
        if integer:
            cost0, cost1 = rng.integers(-3, 4, (2, 12)).astype(np.float64)
            w = rng.integers(0, 3, len(edges)).astype(np.float64)
        else:
            cost0, cost1 = rng.normal(0, 1.5, (2, 12))
            w = rng.uniform(0, 1.5, len(edges)) / dist
        labels, e = binary_energy_min(cost0, cost1, edges, w)
        assert labels.dtype == np.int64 and set(np.unique(labels)) <= {0, 1}
        best = brute_binary_energy(cost0, cost1, edges, w)
        assert e == pytest.approx(best, abs=1e-9)
        assert energy(cost0, cost1, edges, w, labels) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_flow_equals_brute_force_min_cut(rng, connectivity):
    edges, _ = grid_edges((3, 4), connectivity)
    for integer in (False, True):
        for _ in range(15):
            sc, tc, wf, wb = random_problem(rng, 12, len(edges), integer=integer)
            flow, sink_side = min_cut(sc, tc, edges, wf, wb)
            assert sink_side.dtype == bool and sink_side.shape == (12,)
            assert flow == pytest.approx(brute_min_cut(sc, tc, edges, wf, wb), abs=1e-9)
            assert cut_value(sc, tc, edges, wf, wb, sink_side) == pytest.approx(flow, abs=1e-9)


@settings(max_examples=40)
@given(st.integers(1, 9), st.integers(0, 20), st.integers(0, 2**31 - 1))
def test_random_graphs_match_brute_force(n, m, seed):
    edges, sc, tc, wf, wb = random_graph(seed, n, m)
    flow, sink_side = min_cut(sc, tc, edges, wf, wb)
    assert flow == pytest.approx(brute_min_cut(sc, tc, edges, wf, wb), abs=1e-9)
    assert cut_value(sc, tc, edges, wf, wb, sink_side) == pytest.approx(flow, abs=1e-9)


# --------------------------------------------------------------------------- PyMaxflow
@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("integer", [False, True])
def test_matches_pymaxflow_on_random_grids(rng, connectivity, integer):
    edges, _ = grid_edges((60, 80), connectivity)
    for _ in range(3):
        sc, tc, wf, wb = random_problem(rng, 60 * 80, len(edges), integer=integer)
        flow, sink_side = min_cut(sc, tc, edges, wf, wb)
        ref_flow, ref_side = maxflow_reference(sc, tc, edges, wf, wb)
        np.testing.assert_allclose(flow, ref_flow, rtol=1e-9)
        np.testing.assert_allclose(cut_value(sc, tc, edges, wf, wb, sink_side), ref_flow,
                                   rtol=1e-9)
        if integer:
            # No rounding: both return the minimum cut with the smallest sink side.
            np.testing.assert_array_equal(sink_side, ref_side)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_energy_matches_pymaxflow_on_random_grids(rng, connectivity):
    edges, dist = grid_edges((60, 80), connectivity)
    for _ in range(3):
        cost0, cost1 = rng.normal(0, 2, (2, 60 * 80))
        w = rng.uniform(0, 2, len(edges)) / dist
        labels, e = binary_energy_min(cost0, cost1, edges, w)
        low = np.minimum(cost0, cost1)
        _, ref_side = maxflow_reference(cost1 - low, cost0 - low, edges, w, w)
        ref = energy(cost0, cost1, edges, w, ref_side.astype(int))
        np.testing.assert_allclose(e, ref, rtol=1e-9)
        np.testing.assert_allclose(energy(cost0, cost1, edges, w, labels), e, rtol=1e-12)


def road_problem(rng, annot_file):
    """The acceptance script's binary problem: road vs rest with noisy integer costs."""
    from PIL import Image

    gt = np.asarray(Image.open(annot_file)).astype(int)
    gt[gt == 11] = 0
    b = (gt == 3).astype(int)
    c2 = np.stack([b, 1 - b], -1) * 4 + rng.integers(0, 7, (*b.shape, 2))
    return c2.astype(np.float64), 3.0


@pytest.mark.data
def test_matches_pymaxflow_on_camvid_road_problem():
    maxflow = pytest.importorskip("maxflow")
    files = sorted(glob.glob(str(SHARED / "camvid" / "valannot" / "*.png")))[::40]
    if not files:
        pytest.skip("CamVid not found in the shared data")
    rng = np.random.default_rng(1)
    for f in files:
        c2, w = road_problem(rng, f)
        shape = c2.shape[:2]
        g = maxflow.Graph[float]()
        ids = g.add_grid_nodes(shape)
        g.add_grid_edges(ids, weights=w, symmetric=True)
        g.add_grid_tedges(ids, c2[..., 1], c2[..., 0])
        ref_flow = g.maxflow()
        ref_labels = g.get_grid_segments(ids).astype(int).ravel()

        edges, _ = grid_edges(shape, 4)
        wv = np.full(len(edges), w)
        cost0, cost1 = c2[..., 0].ravel(), c2[..., 1].ravel()
        flow, sink_side = min_cut(cost1, cost0, edges, wv)
        assert flow == ref_flow  # integer capacities: exact
        np.testing.assert_array_equal(sink_side, ref_labels.astype(bool))
        _, e = binary_energy_min(cost0, cost1, edges, wv)
        assert e == energy(cost0, cost1, edges, wv, ref_labels)
        assert e == flow  # the cut of (cost1, cost0, w) costs the energy of its labelling


# --------------------------------------------------------------------------- edge cases
def test_no_edges_cuts_each_node_alone(rng):
    sc, tc = rng.uniform(0, 3, (2, 30))
    sc[:5] = tc[:5]  # ties go to the source side
    # Alone, a node cuts the cheaper of its terminal arcs: s -> i (sink side) or i -> t.
    for edges in (np.zeros((0, 2), np.int64), [], np.empty((0, 2), np.int32)):
        flow, sink_side = min_cut(sc, tc, edges, [])
        assert flow == pytest.approx(np.minimum(sc, tc).sum(), rel=1e-12)
        np.testing.assert_array_equal(sink_side, tc > sc)
    labels, e = binary_energy_min(sc, tc, np.zeros((0, 2), np.int64), [])
    np.testing.assert_array_equal(labels, (tc < sc).astype(int))
    assert e == pytest.approx(np.minimum(sc, tc).sum(), rel=1e-12)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_all_zero_capacities(connectivity):
    edges, _ = grid_edges((7, 9), connectivity)
    zeros = np.zeros(63)
    flow, sink_side = min_cut(zeros, zeros, edges, np.zeros(len(edges)))
    assert flow == 0.0 and not sink_side.any()
    # Zero terminal capacities with non-zero edges: still nothing to carry.
    flow, sink_side = min_cut(zeros, zeros, edges, np.ones(len(edges)))
    assert flow == 0.0 and not sink_side.any()


def test_empty_graph():
    flow, sink_side = min_cut([], [], np.zeros((0, 2), np.int64), [])
    assert flow == 0.0 and sink_side.shape == (0,)


def test_disconnected_nodes_and_components(rng):
    # Two 4x5 grids side by side in one graph plus isolated nodes between them.
    e1, _ = grid_edges((4, 5), 4)
    edges = np.concatenate([e1, e1 + 25])
    n = 45
    sc, tc, wf, wb = random_problem(rng, n, len(edges))
    flow, sink_side = min_cut(sc, tc, edges, wf, wb)
    ref_flow, ref_side = maxflow_reference(sc, tc, edges, wf, wb)
    np.testing.assert_allclose(flow, ref_flow, rtol=1e-12)
    np.testing.assert_array_equal(sink_side, ref_side)
    isolated = np.arange(20, 25)
    np.testing.assert_array_equal(sink_side[isolated], tc[isolated] > sc[isolated])
    # The components are cut independently.
    f1, s1 = min_cut(sc[:20], tc[:20], e1, wf[:len(e1)], wb[:len(e1)])
    f2, s2 = min_cut(sc[25:], tc[25:], e1, wf[len(e1):], wb[len(e1):])
    np.testing.assert_allclose(flow, f1 + f2 + np.minimum(sc, tc)[isolated].sum(), rtol=1e-12)
    np.testing.assert_array_equal(sink_side[:20], s1)
    np.testing.assert_array_equal(sink_side[25:], s2)


def test_asymmetric_edges_match_pymaxflow_add_edge(rng):
    # A chain s -> 0 -> 1 -> 2 -> t: only the forward capacities carry flow.
    edges = np.array([[0, 1], [1, 2]])
    sc, tc = np.array([5.0, 0, 0]), np.array([0, 0, 5.0])
    flow, sink_side = min_cut(sc, tc, edges, [2.0, 3.0], [7.0, 7.0])
    assert flow == 2.0
    np.testing.assert_array_equal(sink_side, [False, True, True])
    flow, sink_side = min_cut(sc, tc, edges[:, ::-1], [7.0, 7.0], [2.0, 3.0])
    assert flow == 2.0
    np.testing.assert_array_equal(sink_side, [False, True, True])
    # Reversed orientation: nothing flows.
    flow, _ = min_cut(sc, tc, edges, [0.0, 0.0], [2.0, 3.0])
    assert flow == 0.0
    # Random asymmetric grids, some arcs one-way only.
    edges, _ = grid_edges((15, 17), 8)
    for _ in range(5):
        sc, tc, wf, wb = random_problem(rng, 15 * 17, len(edges), integer=True)
        wf[rng.random(len(edges)) < 0.3] = 0
        flow, sink_side = min_cut(sc, tc, edges, wf, wb)
        ref_flow, ref_side = maxflow_reference(sc, tc, edges, wf, wb)
        assert flow == ref_flow
        np.testing.assert_array_equal(sink_side, ref_side)
        # Swapping the ends of every edge together with its capacities changes nothing.
        flow2, side2 = min_cut(sc, tc, edges[:, ::-1], wb, wf)
        assert flow2 == flow
        np.testing.assert_array_equal(side2, sink_side)


def test_default_backward_is_forward(rng):
    edges, _ = grid_edges((10, 12), 4)
    sc, tc, wf, _ = random_problem(rng, 120, len(edges))
    a = min_cut(sc, tc, edges, wf)
    b = min_cut(sc, tc, edges, wf, wf)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_inputs_are_not_modified(rng):
    edges, _ = grid_edges((6, 7), 4)
    sc, tc, wf, wb = random_problem(rng, 42, len(edges))
    copies = [x.copy() for x in (sc, tc, edges, wf, wb)]
    min_cut(sc, tc, edges, wf, wb)
    for x, c in zip((sc, tc, edges, wf, wb), copies):
        np.testing.assert_array_equal(x, c)


def test_negative_costs_and_zero_weights(rng):
    edges, _ = grid_edges((5, 6), 4)
    cost0, cost1 = rng.normal(-10, 3, (2, 30))
    labels, e = binary_energy_min(cost0, cost1, edges, np.zeros(len(edges)))
    np.testing.assert_array_equal(labels, (cost1 < cost0).astype(int))
    assert e == pytest.approx(np.minimum(cost0, cost1).sum(), rel=1e-12)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (([1.0, -1.0], [0.0, 0.0], [[0, 1]], [1.0]), ValueError),
        (([1.0, 1.0], [0.0, np.nan], [[0, 1]], [1.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0, 0.0], [[0, 1]], [1.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0], [[0, 2]], [1.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0], [[0, -1]], [1.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0], [[0, 1]], [-1.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0], [[0, 1]], [1.0, 2.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0], [0, 1], [1.0]), ValueError),
        (([1.0, 1.0], [0.0, 0.0], [[0.0, 1.0]], [1.0]), TypeError),
        (([1.0, 1.0], [0.0, 0.0], [[0, 1]], [np.inf]), ValueError),
    ],
)
def test_bad_input(args, error):
    with pytest.raises(error):
        min_cut(*args)
    with pytest.raises(ValueError):
        binary_energy_min([0.0, 1.0], [0.0], [[0, 1]], [1.0])


@settings(max_examples=40)
@given(st.integers(1, 40), st.integers(0, 120), st.integers(0, 2**31 - 1))
def test_growing_the_sink_tree_alone_finds_the_same_cut(n, m, seed):
    # Alpha-expansion grows only the sink tree (its source side is most of the image):
    # the flow and the sink side (the nodes that can still reach the sink) are the same.
    from hybridseg.crf._maxflow import _SINK, _bk_maxflow, _residual_graph

    edges, sc, tc, wf, wb = random_graph(seed, n, m)
    out = []
    for grow_source in (True, False):
        ptr, head, rev, cap = _residual_graph(n, edges, wf, wb, np.int32)
        tree = np.zeros(n, np.int8)
        flow = _bk_maxflow(ptr, head, rev, cap, sc - tc, tree, grow_source)
        out.append((flow + np.minimum(sc, tc).sum(), tree == _SINK))
    assert out[1][0] == pytest.approx(out[0][0], abs=1e-9)
    np.testing.assert_array_equal(out[1][1], out[0][1])
    if n <= 10:
        assert out[1][0] == pytest.approx(brute_min_cut(sc, tc, edges, wf, wb), abs=1e-9)
