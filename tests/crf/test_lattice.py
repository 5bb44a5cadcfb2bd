"""The permutohedral lattice against the exact Gaussian filter (its oracle)."""

import numpy as np
import pytest
from _oracles import gaussian_filter, normalised_kernel
from _oracles.dense import lattice_splat

from hybridseg.crf._exact import ExactKernel, exact_filter
from hybridseg.crf._lattice import Lattice


def normalised(filter_fn, f, v):
    return filter_fn(f, v) / filter_fn(f, np.ones((len(f), 1), np.float32))


def lattice_filter(f, v):
    return Lattice(f).filter(v)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_normalised_filter_close_to_exact_on_image_grids(rng, d):
    # Points on a pixel grid with smooth extra features, as images give.
    h, w = 12, 15
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cols = [xx.ravel() / 2.0, yy.ravel() / 2.0]
    for c in range(d - 2):
        cols.append((np.sin(xx / 4 + c) * 3).ravel())
    f = np.stack(cols[:d], 1).astype(np.float32)
    v = rng.random((h * w, 3)).astype(np.float32)
    ours = normalised(lattice_filter, f, v)
    exact = normalised(gaussian_filter, f, v)
    # Documented tolerance: the lattice's kernel is a piecewise-linear stand-in for the
    # Gaussian; weighted averages of values in [0, 1] agree to ~0.01 on average.
    err = np.abs(ours - exact)
    assert err.mean() < 0.03, err.mean()
    assert err.max() < 0.25, err.max()


def test_exact_backend_kernels_are_the_brute_force_gaussians(rng):
    # crf/_exact.py (DenseCRF's backend="exact") against the oracle's pairwise loops.
    f = rng.uniform(0, 4, (60, 3)).astype(np.float32)
    v = rng.normal(0, 1, (60, 2))
    np.testing.assert_allclose(exact_filter(f, v), gaussian_filter(f, v), rtol=1e-12,
                               atol=1e-12)
    kernel = ExactKernel(f, 2.5)
    np.testing.assert_allclose(kernel.matrix, 2.5 * normalised_kernel(f), rtol=1e-5,
                               atol=1e-7)
    out = 1 + kernel.filter(v.astype(np.float32))
    np.testing.assert_allclose(out, 1 + 2.5 * normalised_kernel(f) @ v, rtol=1e-5, atol=1e-5)


def test_constant_values_are_preserved(rng):
    f = rng.uniform(0, 10, (300, 4)).astype(np.float32)
    out = normalised(lattice_filter, f, np.full((300, 2), 0.7, np.float32))
    np.testing.assert_allclose(out, 0.7, rtol=1e-5)


def test_filter_is_linear_and_symmetric(rng):
    f = rng.uniform(0, 6, (200, 3)).astype(np.float32)
    lat = Lattice(f)
    a = rng.random((200, 2)).astype(np.float32)
    b = rng.random((200, 2)).astype(np.float32)
    np.testing.assert_allclose(lat.filter(a + 2 * b), lat.filter(a) + 2 * lat.filter(b),
                               rtol=1e-4, atol=1e-5)
    # <a, K b> ~ <K a, b>: splat and slice are transposes and each directional blur is
    # symmetric, but their product is not exactly (the d + 1 blurs run in one order, as in
    # pydensecrf): symmetric to ~1e-3.
    np.testing.assert_allclose(np.sum(a * lat.filter(b)), np.sum(lat.filter(a) * b),
                               rtol=2e-3)


def test_transpose_is_the_exact_adjoint(rng):
    f = rng.uniform(0, 6, (300, 4)).astype(np.float32)
    lat = Lattice(f)
    sw = rng.uniform(0.5, 1.5, lat.weights.shape).astype(np.float32)
    lw = rng.uniform(0.5, 1.5, lat.weights.shape).astype(np.float32)
    a = rng.random((300, 3)).astype(np.float32)
    b = rng.random((300, 3)).astype(np.float32)
    kb = lat.filter(b, splat_weights=sw, slice_weights=lw)
    kta = lat.filter(a, splat_weights=sw, slice_weights=lw, transpose=True)
    # Same sum of products in another order: equal up to float32 rounding.
    np.testing.assert_allclose(np.sum(a * kb, dtype=np.float64),
                               np.sum(kta * b, dtype=np.float64), rtol=2e-6)


def test_far_apart_points_do_not_mix():
    f = np.array([[0.0, 0.0], [1000.0, 1000.0]], np.float32)
    out = normalised(lattice_filter, f, np.array([[1.0], [0.0]], np.float32))
    np.testing.assert_allclose(out[:, 0], [1.0, 0.0], atol=1e-6)


def test_same_points_share_a_simplex(rng):
    f = np.repeat(rng.uniform(0, 5, (10, 3)), 50, axis=0).astype(np.float32)
    lat = Lattice(f)
    assert lat.n_lattice <= 10 * 4
    np.testing.assert_array_equal(lat.offsets[0], lat.offsets[49])


def test_bad_features():
    with pytest.raises(ValueError, match="non-empty"):
        Lattice(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="NaN"):
        Lattice(np.array([[np.nan, 0.0]]))


@pytest.mark.parametrize("n, d", [(1, 1), (300, 2), (2000, 5), (20000, 3)])
def test_splat_is_the_serial_scatter_bit_for_bit(n, d, rng):
    lat = Lattice((rng.random((n, d)) * 4).astype(np.float32))
    values = rng.normal(size=(n, 3)).astype(np.float32)
    weights = rng.random((n, d + 1)).astype(np.float32)
    want = lattice_splat(lat.offsets, weights, values, lat.n_lattice, lat.n_blocks)
    np.testing.assert_array_equal(lat.splat(weights, values), want)
    # a non-contiguous input gives the same
    np.testing.assert_array_equal(lat.splat(weights, np.asfortranarray(values)), want)


def test_filter_is_the_same_to_the_last_bit_for_any_thread_count(rng):
    import numba

    f = (rng.random((5000, 5)) * 6).astype(np.float32)
    v = rng.random((5000, 7)).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        outs = []
        for t in sorted({1, 2, threads}):
            numba.set_num_threads(min(t, numba.config.NUMBA_NUM_THREADS))
            lat = Lattice(f)
            outs.append((lat.filter(v), lat.filter(v, transpose=True)))
    finally:
        numba.set_num_threads(threads)
    for a, b in outs[1:]:
        np.testing.assert_array_equal(a, outs[0][0])
        np.testing.assert_array_equal(b, outs[0][1])
