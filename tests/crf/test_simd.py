"""The 8-wide intrinsics of the mean-field passes (crf/_simd.py) against numpy."""

import numba
import numpy as np
import pytest

from hybridseg.crf._simd import (
    _axpy8,
    _combine8,
    _dot8,
    _exp8,
    _fill8,
    _max8,
    _mul8,
    _outer4,
    _slice8,
    _softmax_grad8,
    _splat8,
)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@numba.njit
def _slice_point(dst, lat, off, w, i, cf):
    for c0 in range(0, lat.shape[1], 8):
        _slice8(dst, lat, off, w, i, cf, c0)


@numba.njit
def _splat_point(acc, rows, w, i, src, scale):
    for c0 in range(0, acc.shape[1], 8):
        _splat8(acc, rows, w, i, src, c0, scale)


@numba.njit
def _reductions(x, y):
    kp = x.shape[0]
    mx = _max8(x, 0)
    dot = np.float32(0.0)
    for c0 in range(0, kp, 8):
        mx = max(mx, _max8(x, c0))
        dot += _dot8(x, c0, y, c0)
    return mx, dot


@numba.njit
def _exp_row(row, shift):
    total = np.float32(0.0)
    for c0 in range(0, row.shape[0], 8):
        total += _exp8(row, c0, shift)
    return total


@numba.njit
def _axpy_rows(dst, src, w):
    for c0 in range(0, dst.shape[0], 8):
        _axpy8(dst, c0, src, c0, w)


@numba.njit
def _vecmat(dst, mat, x, scale):
    kp = dst.shape[0]
    for c0 in range(0, kp, 8):
        _combine8(dst, c0, mat, c0, kp, x, x.shape[0], scale)


@pytest.mark.parametrize("kp, corners", [(8, 2), (16, 3), (16, 6), (24, 4), (32, 7)])
def test_slice_and_splat_of_one_point(rng, kp, corners):
    n, m = 5, 30
    lat = rng.normal(0, 1, (m, kp)).astype(np.float32)
    off = np.stack([rng.choice(m, corners, replace=False) for _ in range(n)]).astype(np.int32)
    w = rng.random((n, corners)).astype(np.float32)
    dst = rng.normal(0, 1, kp).astype(np.float32)
    want = dst + 0.5 * (w[3][:, None] * lat[off[3]]).sum(0)
    _slice_point(dst, lat, off, w, 3, np.float32(0.5))
    np.testing.assert_allclose(dst, want, rtol=1e-6, atol=1e-6)
    src = rng.normal(0, 1, kp).astype(np.float32)
    acc = lat.copy()
    want = lat.astype(np.float64)
    for r in range(corners):
        want[off[2, r]] += 2.0 * w[2, r] * src
    _splat_point(acc, off, w, 2, src, np.float32(2.0))
    np.testing.assert_allclose(acc, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kp", [8, 16, 40])
def test_reductions_axpy_and_vector_matrix(rng, kp):
    x = rng.normal(0, 3, kp).astype(np.float32)
    y = rng.normal(0, 1, kp).astype(np.float32)
    mx, dot = _reductions(x, y)
    assert mx == x.max()
    np.testing.assert_allclose(dot, x.astype(np.float64) @ y, rtol=1e-5, atol=1e-6)
    dst = y.copy()
    _axpy_rows(dst, x, np.float32(-0.25))
    np.testing.assert_allclose(dst, y - 0.25 * x, rtol=1e-6, atol=1e-6)
    for n in (1, kp - 3, kp):  # odd and even lengths (two register chains)
        mat = rng.normal(0, 1, (kp, kp)).astype(np.float32)
        v = rng.normal(0, 1, n).astype(np.float32)
        dst = y.copy()
        _vecmat(dst, mat, v, np.float32(-1.0))
        np.testing.assert_allclose(dst, y - v @ mat[:n], rtol=1e-5, atol=1e-5)


def test_exponential_of_a_row(rng):
    row = np.concatenate([rng.uniform(-80, 0, 30), [0.0, -60.0]]).astype(np.float32)
    shift = np.float32(0.5)
    want = np.exp(np.maximum(row.astype(np.float64) - 0.5, -60.0))
    total = _exp_row(row, shift)
    np.testing.assert_allclose(row, want, rtol=2e-7, atol=0)
    np.testing.assert_allclose(total, want.sum(), rtol=1e-6)
    assert np.all(row > 0)  # floored at exp(-60): never a denormal or zero


@numba.njit
def _elementwise(dst, src, q, dq, acc, s, inner):
    kp = dst.shape[0]
    g = np.empty(kp, np.float32)
    for c0 in range(0, kp, 8):
        _mul8(dst, c0, src, c0, s)
        _softmax_grad8(g, acc, c0, q, dq, c0, inner)
    z = np.empty(kp, np.float32)
    for c0 in range(0, kp, 8):
        _fill8(z, c0, np.float32(0.0))
    return g, z


@numba.njit
def _outer_rows(part, cols, count, rows, start):
    kp = cols.shape[0]
    for c in range(0, kp, 4):
        for c0 in range(0, kp, 8):
            _outer4(part, cols, c, count, rows, start, c0)


def test_elementwise_helpers(rng):
    kp = 24
    src, q, dq, acc = (rng.normal(0, 1, kp).astype(np.float32) for _ in range(4))
    acc0 = acc.copy()
    dst = np.empty(kp, np.float32)
    g, z = _elementwise(dst, src, q, dq, acc, np.float32(1.5), np.float32(0.25))
    np.testing.assert_allclose(dst, 1.5 * src, rtol=1e-7)
    np.testing.assert_allclose(g, q * (dq - 0.25), rtol=1e-6)
    np.testing.assert_allclose(acc, acc0 + g, rtol=1e-6)
    assert not z.any()


@pytest.mark.parametrize("count", [1, 37, 64])
def test_outer_product_rounds(rng, count):
    kp, start = 16, 3
    cols = rng.normal(0, 1, (kp, 64)).astype(np.float32)
    rows = rng.normal(0, 1, (start + count + 2, kp)).astype(np.float32)
    part = rng.normal(0, 1, kp * kp).astype(np.float32)
    want = part.reshape(kp, kp) - cols[:, :count] @ rows[start:start + count]
    _outer_rows(part, cols, count, rows.reshape(-1), start)
    np.testing.assert_allclose(part.reshape(kp, kp), want, rtol=1e-5, atol=1e-5)
