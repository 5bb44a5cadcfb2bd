"""The dense CRF's mean field, forward and exact backward, in numba: the one engine that
``DenseCRF.refine``, ``DenseCRF.fit``'s learning and ``CRFRNN`` on the CPU run.

Each iteration is one pass over the points that slices every lattice kernel's blurred
values into the message, updates the point's marginals and splats them for the next
iteration (so the marginals of the intermediate iterations are never written unless a
tape, a callback or a trace asks for them); between passes each lattice is summed from
its blocks and blurred. The reverse pass has the same shape with the transposed filters.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from ..utils._parallel import block_launches, serialized_launches
from ._kernels import NORM_EPS
from ._lattice import Lattice, _blur, point_blocks
from ._simd import (
    _axpy8,
    _combine8,
    _dot8,
    _exp8,
    _fill8,
    _float32_bits_as_int32,
    _int32_bits_as_float32,
    _max8,
    _mul8,
    _outer4,
    _slice8,
    _softmax_grad8,
    _splat8,
)


@numba.njit(cache=True, nogil=True, inline="always")
def _log_floored(x):
    """``log(max(x, 1e-30))`` in float32, branch-free so that row loops vectorise.

    The exponent and mantissa from the bits (``x = m 2^e``, ``m`` in [sqrt(1/2),
    sqrt(2))), then Cephes' degree-9 polynomial for ``log(m)``: error within 2 ulp of
    ``logf`` on [1e-30, 1e30] (measured against float64 in the tests).
    """
    x = max(x, np.float32(1e-30))
    bits = _float32_bits_as_int32(x)
    e = np.float32(((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126))
    m = _int32_bits_as_float32((bits & np.int32(0x807FFFFF)) | np.int32(0x3F000000))
    small = m < np.float32(0.707106781186547524)
    e = e - np.float32(1.0) if small else e
    m = (m + m if small else m) - np.float32(1.0)
    z = m * m
    y = np.float32(7.0376836292e-2)
    y = y * m - np.float32(1.1514610310e-1)
    y = y * m + np.float32(1.1676998740e-1)
    y = y * m - np.float32(1.2420140846e-1)
    y = y * m + np.float32(1.4249322787e-1)
    y = y * m - np.float32(1.6668057665e-1)
    y = y * m + np.float32(2.0000714765e-1)
    y = y * m - np.float32(2.4999993993e-1)
    y = y * m + np.float32(3.3333331174e-1)
    y = y * m * z
    y += np.float32(-2.12194440e-4) * e
    y += np.float32(-0.5) * z
    return (m + y) + np.float32(0.693359375) * e


# Flags for the fused passes: sums may be reassociated (and so vectorised); no NaN or inf
# reaches them (unaries are finite, the exponential is clamped). The code is the same
# whatever the thread count, so are the bits.
_FASTMATH = {"reassoc", "nsz", "contract", "nnan", "ninf"}


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _neg_unary_rows(scores, take_log, negate, out):
    """``out[:, :k] = log(max(scores, 1e-30))``, ``-scores`` or ``scores``, the padding
    columns ``-1e30``: one pass from the caller's scores to the padded logits the passes
    read."""
    n, k = scores.shape
    kp = out.shape[1]
    for i in prange(n):
        for c in range(k):
            v = scores[i, c]
            if take_log:
                v = _log_floored(v)
            elif negate:
                v = -v
            out[i, c] = v
        for c in range(k, kp):
            out[i, c] = np.float32(-1e30)


def _padded_width(k):
    """Row width for ``k`` labels: the next multiple of 8, so that every row operation of
    the passes runs 8 labels at a time (``_simd``). Measured on one thread at 360x480, 10
    iterations, against rows of exactly ``k``: K = 2 0.173 -> 0.145 s, K = 5 0.216 ->
    0.147 s, K = 9 0.214 -> 0.179 s, K = 13 0.273 -> 0.185 s."""
    return -(-k // 8) * 8


@numba.njit(cache=True, nogil=True, inline="always")
def _matvec_sub(out, mat, x, width, k):
    """``out -= x[:k] @ M[:k]``, ``M`` the (width, width) matrix held flat in ``mat`` (the
    padded entries of ``x`` are zero), 8 columns at a time in registers."""
    for c0 in range(0, width, 8):
        _combine8(out, c0, mat, c0, width, x, k, np.float32(-1.0))


_GMU_ROUND = 64  # points per round of mu's gradient in the reverse pass


@numba.njit(cache=True, nogil=True, inline="always")
def _gmu_round(gmu, b, part, cols, rows, start, count, k):
    """``gmu[b] -= S^T Q`` over ``count`` points from ``start``: ``S``'s columns in
    ``cols[:, :count]``, ``Q`` the rows of ``rows`` (flat, ``kp`` wide). Summed in
    float32 registers over the round (:func:`_outer4`), then added in float64; only the
    ``k`` real labels' rows (the padded ones of ``S`` are zero)."""
    kp = gmu.shape[1]
    for c in range(0, k, 4):  # rows c .. c + 3 < kp (a multiple of 8); padded ones are 0
        for c0 in range(0, kp, 8):
            _outer4(part, cols, c, count, rows, start, c0)
    for c in range(k):
        for c2 in range(kp):
            gmu[b, c, c2] += np.float64(part[c * kp + c2])
            part[c * kp + c2] = 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _slice_rows8(out, i, n_lat, offsets, weights, lattices, coefs):
    """``out += sum_t coefs[t] slice_t`` at point ``i``, 8 labels at a time."""
    kp = out.shape[0]
    for t in range(n_lat):
        for c0 in range(0, kp, 8):
            _slice8(out, lattices[t], offsets[t], weights[t], i, coefs[t], c0)


@numba.njit(cache=True, nogil=True, inline="always")
def _max_row8(row):
    """``max(row)``, 8 labels at a time."""
    mx = _max8(row, 0)
    for c0 in range(8, row.shape[0], 8):
        mx = max(mx, _max8(row, c0))
    return mx


@numba.njit(cache=True, nogil=True, inline="always")
def _exp_row8(row, mx):
    """``row = exp(row - mx)`` (``mx`` the row's maximum), 8 labels at a time; returns
    the sum."""
    total = np.float32(0.0)
    for c0 in range(0, row.shape[0], 8):
        total += _exp8(row, c0, mx)
    return total


@numba.njit(cache=True, nogil=True, inline="always")
def _scatter_add(acc, rows, w, i, row, scale):
    """``acc[rows[i, r]] += scale w[i, r] * row`` for every corner ``r`` of point ``i``,
    8 labels at a time."""
    for c0 in range(0, row.shape[0], 8):
        _splat8(acc, rows, w, i, row, c0, scale)


@numba.njit(cache=True, nogil=True, inline="always")
def _zero_block_rows(accs, row_base, n_lat, b):
    """Zero block ``b``'s rows of every lattice kernel's accumulator."""
    for t in range(n_lat):
        acc = accs[t]
        for r in range(row_base[t][b], row_base[t][b + 1]):
            for c in range(acc.shape[1]):
                acc[r, c] = 0.0


@block_launches
@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FASTMATH)
def _forward_pass(a, n_lat, offsets, weights, lattices, coefs, dense, mu_t, potts, sliced,
                  scatter, acc_rows, row_base, accs, q_out, z_out, p_out, k):
    """One parallel mean-field update of every point, fused with the splat of the next.

    Per point ``i``: the message ``m = sum_t coefs[t] slice_t(lattices[t]) + dense[i]``
    (when ``sliced``); the logits ``z = a[i] + m`` for Potts, else ``a[i] - mu m``
    (``mu_t`` is ``mu`` transposed); ``q = softmax(z)``; then, with ``scatter``, ``q``
    splatted into each lattice kernel's block rows ``accs[t]`` (which this pass zeroes
    first). Rows are ``kp`` wide, a multiple of 8; padded columns of ``a`` are -1e30, so
    those of ``q`` are zero. Outputs written when they have rows: ``q_out`` (N, kp),
    ``z_out`` (N, k) the logits, ``p_out`` (N, k) the probabilities.

    Each block of points is one thread's and writes only its own rows of ``accs``: the
    result is the same to the last bit for any number of threads.
    """
    n, kp = a.shape
    n_blocks = row_base[0].shape[0] - 1
    has_dense = dense.shape[0] > 0
    mu_t_flat = mu_t.reshape(-1)
    a_flat = a.reshape(-1)
    q_flat = q_out.reshape(-1)
    for b in prange(n_blocks):
        row = np.empty(kp, np.float32)
        msg = np.empty(kp, np.float32)
        if scatter:
            _zero_block_rows(accs, row_base, n_lat, b)
        for i in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            if sliced and not potts:
                for c in range(kp):
                    msg[c] = dense[i, c] if has_dense else np.float32(0.0)
                _slice_rows8(msg, i, n_lat, offsets, weights, lattices, coefs)
                for c in range(kp):
                    row[c] = a[i, c]
                _matvec_sub(row, mu_t_flat, msg, kp, k)
            else:
                if has_dense:
                    for c in range(kp):
                        row[c] = a[i, c] + dense[i, c]
                else:
                    for c0 in range(0, kp, 8):
                        _mul8(row, c0, a_flat, i * kp + c0, np.float32(1.0))
                if sliced:
                    _slice_rows8(row, i, n_lat, offsets, weights, lattices, coefs)
            if z_out.shape[0] > 0:
                for c in range(z_out.shape[1]):
                    z_out[i, c] = row[c]
            # The softmax, its normalisation folded into the writes and the splat.
            inv = np.float32(1.0) / _exp_row8(row, _max_row8(row))
            if q_out.shape[0] > 0:
                for c0 in range(0, kp, 8):
                    _mul8(q_flat, i * kp + c0, row, c0, inv)
            if p_out.shape[0] > 0:
                for c in range(p_out.shape[1]):
                    p_out[i, c] = row[c] * inv
            if scatter:
                for t in range(n_lat):
                    _scatter_add(accs[t], acc_rows[t], weights[t], i, row, inv)


@block_launches
@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FASTMATH)
def _backward_pass(g_in, q_prev, n_lat, offsets, weights, lattices, alphas, coefs, dense,
                   mu, potts, sliced, scatter, want_mu, acc_rows, row_base, accs, grad_a,
                   g_out, dots, gmu, k):
    """One step of the mean field's reverse pass, fused with the splat of the next.

    The step's ``G = dL/dZ_t`` is splatted as it is: ``K^T (G B) = (K^T G) B`` with ``B =
    I`` (Potts) or ``-mu``, so ``B`` is applied after the slice, and ``mu``'s gradient
    ``-G^T M_t = -(sum_m w_m K_m^T G)^T Q_{t-1}`` needs no messages from the forward.

    With ``sliced`` (step ``t``): per kernel the transposed filter's slice ``s_t`` of
    ``lattices[t]``; ``s = sum_t coefs[t] s_t + dense[i]``; ``dots[b, t] += alphas[t]
    <s_t, r>`` with ``r = q_prev[i] B^T`` (the kernel weight's gradient, float64 per
    block); ``dL/dq = s B``; through the softmax, ``g = q_prev (dL/dq - <q_prev, dL/dq>)``
    (``dL/dz_{t-1}``; ``<q_prev, dL/dq> = <s, r>``, from the same dots), added to
    ``grad_a``; with ``want_mu``, ``gmu[b] -= s q_prev[i]^T``. Without (the seed), ``g =
    g_in[i]`` and ``grad_a[i] = g``. Then with ``scatter``: ``g`` into ``g_out`` (when it
    has rows) and splatted into the block rows ``accs[t]`` (zeroed first).
    """
    n, kp = grad_a.shape
    n_blocks = row_base[0].shape[0] - 1
    has_dense = dense.shape[0] > 0
    mu_flat = mu.reshape(-1)
    mu_t_flat = np.ascontiguousarray(mu.T).reshape(-1)
    q_flat = q_prev.reshape(-1)
    grad_flat = grad_a.reshape(-1)
    mu_round = want_mu and sliced
    for b in prange(n_blocks):
        g = np.empty(kp, np.float32)
        gq = np.empty(kp, np.float32)
        dq_row = np.empty(kp, np.float32)
        r_row = np.empty(kp, np.float32)
        s_row = np.empty(kp, np.float32)
        gmu_part = np.zeros(kp * kp if mu_round else 1, np.float32)
        s_cols = np.empty((kp, _GMU_ROUND) if mu_round else (1, 1), np.float32)
        n_part = 0
        if scatter:
            _zero_block_rows(accs, row_base, n_lat, b)
        for i in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            if sliced:
                qi = q_prev[i]
                if potts:
                    r = qi
                else:  # r = q B^T = -mu q
                    r = r_row
                    for c in range(kp):
                        r[c] = 0.0
                    _matvec_sub(r, mu_t_flat, qi, kp, k)
                # <dL/dq, q> = <s, r> from the kernels' dot products: no loop of its own
                inner = 0.0
                for c in range(kp):
                    gq[c] = dense[i, c] if has_dense else np.float32(0.0)
                    if has_dense:
                        inner += np.float64(dense[i, c]) * np.float64(r[c])
                for t in range(n_lat):
                    for c0 in range(0, kp, 8):
                        _fill8(s_row, c0, np.float32(0.0))
                        _slice8(s_row, lattices[t], offsets[t], weights[t], i,
                                np.float32(1.0), c0)
                    d = 0.0
                    for c0 in range(0, kp, 8):
                        d += _dot8(s_row, c0, r, c0)
                        _axpy8(gq, c0, s_row, c0, coefs[t])
                    dots[b, t] += alphas[t] * d
                    inner += coefs[t] * d
                if mu_round:  # s kept for the next round of -S^T Q
                    for c in range(kp):
                        s_cols[c, n_part] = gq[c]
                    n_part += 1
                    if n_part == _GMU_ROUND:
                        _gmu_round(gmu, b, gmu_part, s_cols, q_flat, i + 1 - n_part, n_part, k)
                        n_part = 0
                if potts:
                    dq = gq
                else:  # dL/dq = s B = -s mu
                    dq = dq_row
                    for c in range(kp):
                        dq[c] = 0.0
                    _matvec_sub(dq, mu_flat, gq, kp, k)
                inner = np.float32(inner)
                for c0 in range(0, kp, 8):
                    _softmax_grad8(g, grad_flat, i * kp + c0, qi, dq, c0, inner)
            else:
                for c in range(kp):
                    g[c] = g_in[i, c]
                    grad_a[i, c] = g[c]
            if not scatter:
                continue
            if g_out.shape[0] > 0:
                for c in range(kp):
                    g_out[i, c] = g[c]
            for t in range(n_lat):
                _scatter_add(accs[t], acc_rows[t], weights[t], i, g, np.float32(1.0))
        if mu_round and n_part > 0:
            _gmu_round(gmu, b, gmu_part, s_cols, q_flat, (b + 1) * n // n_blocks - n_part,
                       n_part, k)


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _free_energy(unary, q, messages, mu, potts):
    """Mean-field free energy ``E_Q[E] - H(Q)`` of ``q`` given its ``messages``.

    ``messages`` is ``sum_m w_m K_m q``; the pairwise term is ``1/2 <q, messages mu>``
    (``-1/2 <q, messages>`` for Potts, whose ``mu`` is ``-I``). Summed in fixed blocks,
    so the same for any thread count.
    """
    n, k = q.shape
    blocks = point_blocks(n)
    partial = np.zeros(blocks)
    for b in prange(blocks):
        for i in range(b * n // blocks, (b + 1) * n // blocks):
            acc = 0.0
            for c in range(k):
                qc = np.float64(q[i, c])
                acc += qc * unary[i, c]
                if qc > 0.0:
                    acc += qc * np.log(qc)
                if potts:
                    acc -= 0.5 * qc * messages[i, c]
                else:
                    m = 0.0
                    for c2 in range(k):
                        m += mu[c, c2] * messages[i, c2]
                    acc += 0.5 * qc * m
            partial[b] += acc
    total = 0.0
    for b in range(blocks):
        total += partial[b]
    return total


class LatticeKernel:
    """A normalised Gaussian kernel over per-point features, on a permutohedral lattice.

    ``filter(Q)`` is ``D^-1/2 (K * (D^-1/2 Q))``, pydensecrf's symmetric normalisation of
    the lattice filter ``K``, ``D = K * 1`` being each point's total kernel mass: the
    normalisation is folded into the splat ``weights`` (barycentric weights times
    ``D^-1/2``), and slicing uses the same weights times ``alpha``. The kernel has unit
    weight; the mean field scales it.

    Parameters
    ----------
    features : (N, d) array_like of float
        Point features, already divided by the kernel's standard deviations.
    """

    def __init__(self, features):
        self.lattice = lat = Lattice(features)
        mass = lat.filter(np.ones((lat.n_points, 1), np.float32))[:, 0]
        norm = (1.0 / np.sqrt(mass.astype(np.float64) + NORM_EPS)).astype(np.float32)
        self.weights = np.ascontiguousarray(lat.weights * norm[:, None])
        self.alpha = lat.alpha

    def filter(self, values, *, transpose=False):
        """The normalised filter of ``values`` (N, C), or its exact transpose."""
        return self.lattice.filter(values, splat_weights=self.weights,
                                   slice_weights=self.weights * self.alpha,
                                   transpose=transpose)


_NONE = np.zeros((0, 1), np.float32)


@dataclass
class Tape:
    """What the reverse pass needs from a forward pass.

    qs : list of T (N, kp) float32 arrays, ``Q_0 .. Q_{T-1}`` (padded columns zero)
    """

    qs: list
    kernels: list
    weights: np.ndarray
    mu: np.ndarray | None
    k: int
    kp: int


def _mu_padded(mu, k, kp):
    if mu is None:
        return np.zeros((1, 1), np.float32)
    out = np.zeros((kp, kp), np.float32)
    out[:k, :k] = mu
    return out


def forward(a, kernels, weights, mu, n_iter, *, k, output="proba", tape=False,
            callback=None, trace=None, pool_tape=False):
    """The mean field: ``T`` parallel updates from ``Q_0 = softmax(a)``.

    ``Z_t = a + M_t`` (Potts, ``mu`` None) or ``a - M_t mu^T``, ``M_t = sum_m w_m K_m
    Q_{t-1}``, ``Q_t = softmax(Z_t)``. Every lattice kernel's slice, the update and the
    splat for the next iteration run in one pass over the points; other kernels
    (``filter(values, transpose=False)``, e.g. ``ExactKernel``) add their messages
    computed from ``Q_{t-1}``.

    Parameters
    ----------
    a : (N, kp) ndarray of float32, C-contiguous
        Logits ``-U``, columns past ``k`` (padding) -1e30.
    kernels : list
        Unit-weight kernels (:class:`LatticeKernel` or any with ``filter``).
    weights : (M,) array_like of float
        Kernel weights ``w_m``.
    mu : (K, K) ndarray or None
        Label compatibility (a penalty); None for Potts (``mu = -I``).
    n_iter : int
    k : int
        The number of labels.
    output : {"proba", "logits"}, default="proba"
        ``Q_T`` or ``Z_T`` (``a`` when ``n_iter`` is 0).
    tape : bool, default=False
        Also return a :class:`Tape` for :func:`backward`.
    callback : callable, optional
        ``callback(t, Q_t)`` for ``t = 0 .. T``.
    trace : dict, optional
        Filled with ``"energy"`` (``T + 1`` free energies, of ``Q_0 .. Q_T``),
        ``"seconds"`` (per iteration, energy bookkeeping excluded) and ``"changed"``
        (fraction of points whose most probable label changed).
    pool_tape : bool, default=False
        The tape's arrays come from the work pool and go back to it when the tape is
        collected: only for a tape no caller outside the engine sees.

    Returns
    -------
    out : (N, k) ndarray of float32
    tape : Tape, only with ``tape=True``
    """
    n, kp = a.shape
    weights = np.asarray(weights, np.float64)
    live = [i for i in range(len(kernels)) if weights[i] != 0.0]
    lat_k = [kernels[i] for i in live if isinstance(kernels[i], LatticeKernel)]
    dense_k = [(kernels[i], weights[i]) for i in live
               if not isinstance(kernels[i], LatticeKernel)]
    coefs = np.array([weights[i] * kernels[i].alpha for i in live
                      if isinstance(kernels[i], LatticeKernel)] or [0.0], np.float32)
    args = _PassArgs(lat_k, n, kp)
    potts = mu is None
    mu_p = np.ascontiguousarray(_mu_padded(mu, k, kp).T)
    watch = callback is not None or trace is not None
    # One array per iteration, not one (T, N, kp) block: blocks above malloc's mmap
    # ceiling (32 MB) are mapped afresh at each call, and their page faults cost a CRF-RNN
    # step about 15% of its time at 360x480, K = 11.
    new = _POOL.take if pool_tape else (lambda shape: np.empty(shape, np.float32))
    qs = [new((n, kp)) for _ in range(n_iter)] if tape else None
    q_buf = np.empty((n, kp), np.float32) if (dense_k and not tape) or watch else None
    out = np.empty((n, k), np.float32)
    labels = None
    if trace is not None:
        trace.update(energy=[], seconds=[], changed=[])

    def q_at(t):
        """Where ``Q_t`` is written, if anywhere."""
        if tape and t < n_iter:
            return qs[t]
        return q_buf if q_buf is not None else _NONE

    def watched(t, q, elapsed):
        nonlocal labels
        qk = q[:, :k].copy()  # the caller keeps its own: the tape's arrays may be reused
        if trace is not None:
            if t > 0:
                trace["seconds"].append(elapsed)
                new = qk.argmax(1)
                trace["changed"].append(float(np.mean(new != labels)))
            labels = qk.argmax(1)
            trace["energy"].append(_energy(a[:, :k], kernels, weights, mu, qk))
        if callback is not None:
            callback(t, qk)

    last = n_iter == 0
    _forward_pass(a, args.n_lat, args.offsets, args.weights, args.no_lattices, coefs, _NONE,
                  mu_p, potts, False, not last and args.n_lat > 0, args.acc_rows,
                  args.row_base, args.accs, q_at(0),
                  out if last and output == "logits" else _NONE,
                  out if last and output == "proba" else _NONE, k)
    q_prev = q_at(0)
    if watch:
        watched(0, q_prev if not last or output == "logits" else out, 0.0)
    for t in range(1, n_iter + 1):
        start = time.perf_counter()
        last = t == n_iter
        lattices = args.blurred(False)
        dense = _NONE
        if dense_k:
            dense = np.zeros((n, kp), np.float32)
            for kern, w in dense_k:
                dense[:, :k] += np.float32(w) * kern.filter(q_prev[:, :k])
        q_t = q_at(t) if (not last or watch) else _NONE
        _forward_pass(a, args.n_lat, args.offsets, args.weights, lattices, coefs, dense,
                      mu_p, potts, True, not last and args.n_lat > 0, args.acc_rows,
                      args.row_base, args.accs, q_t,
                      out if last and output == "logits" else _NONE,
                      out if last and output == "proba" else _NONE, k)
        q_prev = q_t
        if watch:
            watched(t, q_t, time.perf_counter() - start)
    args.release()
    if not tape:
        return out
    taped = Tape(qs=qs, kernels=list(kernels), weights=weights,
                 mu=None if mu is None else np.asarray(mu, np.float32), k=k, kp=kp)
    if pool_tape:
        weakref.finalize(taped, _POOL.give, qs)
    return out, taped


def backward(tape, grad_z, *, want_mu=False):
    """The exact reverse pass of :func:`forward`: from ``dL/dZ_T`` to the gradients of
    ``L`` with respect to the logits ``a``, the kernel weights and ``mu``.

    With ``G_t = dL/dZ_t``, ``dL/dM_t = G_t B`` where ``B = I`` (Potts) or ``-mu``, and
    ``S_t = sum_m w_m K_m^T G_t``: ``dL/dQ_{t-1} = S_t B``; ``dL/dw_m += <K_m^T G_t,
    Q_{t-1} B^T>``; ``dL/dmu -= G_t^T M_t = S_t^T Q_{t-1}``; ``G_{t-1}`` through the
    softmax; ``dL/da = sum_t G_t``. Each kernel's transpose is applied exactly (the
    lattice blur run in reverse order), so this is the gradient of what :func:`forward`
    computes. ``mu``'s gradient needs nothing but the tape's marginals, so it is there
    for a Potts forward too (at ``mu = -I``).

    Parameters
    ----------
    tape : Tape
    grad_z : (N, k) array_like of float32
        ``dL/dZ_T``.
    want_mu : bool, default=False
        Also return ``dL/dmu``.

    Returns
    -------
    grad_a : (N, k) ndarray of float32
    grad_weights : (M,) ndarray of float64
    grad_mu : (k, k) ndarray of float64, or None
    """
    qs, kernels, weights, k, kp = tape.qs, tape.kernels, tape.weights, tape.k, tape.kp
    n_iter = len(qs)
    g = np.asarray(grad_z, np.float32)
    n = g.shape[0]
    g_in = _POOL.take((n, kp))
    g_in[:, k:] = 0.0
    g_in[:, :k] = g
    lat_i = [i for i, kern in enumerate(kernels) if isinstance(kern, LatticeKernel)]
    dense_i = [i for i in range(len(kernels)) if i not in lat_i]
    lat_k = [kernels[i] for i in lat_i]
    args = _PassArgs(lat_k, n, kp)
    alphas = np.array([kernels[i].alpha for i in lat_i] or [0.0], np.float64)
    coefs = np.array([weights[i] * kernels[i].alpha for i in lat_i] or [0.0], np.float32)
    potts = tape.mu is None
    mu_p = _mu_padded(tape.mu, k, kp)
    blocks = point_blocks(n)
    dots = np.zeros((blocks, max(1, len(lat_i))))
    gmu = np.zeros((blocks, kp, kp)) if want_mu else np.zeros((1, 1, 1))
    grad_w = np.zeros(len(kernels))
    grad_a = _POOL.take((n, kp))
    gm = _POOL.take((n, kp)) if dense_i else _NONE
    _backward_pass(g_in, _NONE, args.n_lat, args.offsets, args.weights, args.no_lattices,
                   alphas, coefs, _NONE, mu_p, potts, False, n_iter > 0,
                   want_mu, args.acc_rows, args.row_base, args.accs, grad_a, gm, dots, gmu,
                   k)
    for t in range(n_iter, 0, -1):
        q_prev = qs[t - 1]
        dense = _NONE
        if dense_i:
            dense = np.zeros((n, kp), np.float32)
            for i in dense_i:
                h = kernels[i].filter(gm[:, :k], transpose=True)  # K^T G, before B
                r = q_prev[:, :k] if potts else -(q_prev[:, :k] @ tape.mu.T)
                grad_w[i] += float(np.sum(h.astype(np.float64) * r))
                dense[:, :k] += np.float32(weights[i]) * h
        more = t > 1
        _backward_pass(_NONE, q_prev, args.n_lat, args.offsets, args.weights,
                       args.blurred(True), alphas, coefs, dense, mu_p, potts, True, more,
                       want_mu, args.acc_rows, args.row_base, args.accs, grad_a,
                       gm if more else _NONE, dots, gmu, k)
    for j, i in enumerate(lat_i):
        grad_w[i] += float(np.sum(dots[:, j]))
    grad_mu = None
    if want_mu:
        grad_mu = np.zeros((kp, kp))
        for b in range(blocks):
            grad_mu += gmu[b]
        grad_mu = grad_mu[:k, :k]
    args.release()
    work = [g_in] + ([gm] if dense_i else [])
    if kp == k:
        out = grad_a
    else:
        out = np.ascontiguousarray(grad_a[:, :k])
        work.append(grad_a)
    _POOL.give(work)
    return out, grad_w, grad_mu


def _energy(a, kernels, weights, mu, q):
    """The free energy of ``q`` (N, k) (a separate, unfused filtering pass)."""
    n, k = q.shape
    messages = np.zeros((n, k), np.float32)
    for kern, w in zip(kernels, weights):
        if w != 0.0:
            messages += np.float32(w) * kern.filter(q)
    mu64 = np.zeros((k, k)) if mu is None else np.asarray(mu, np.float64)
    return _free_energy(np.ascontiguousarray(-a), q, messages, mu64, mu is None)



_POSITION_KERNELS = OrderedDict()
_POSITION_LOCK = threading.Lock()
# Images of one size come in series (a data set, a video, tiles): the smoothness kernel of
# the last few sizes is kept (about 50 bytes per pixel).
POSITION_KERNELS_KEPT = 2


def position_kernel(spatial_shape, sxy, spacing=None):
    """The :class:`LatticeKernel` on pixel positions alone (the smoothness kernel).

    It depends on the image's shape, ``sxy`` and ``spacing`` only, not on its content:
    the kernels of the last ``POSITION_KERNELS_KEPT`` shapes are kept and shared
    (read-only; each mean field has its own workspace), so a series of images of one
    size builds it once. The result is the one a fresh build gives, bit for bit.
    """
    from ._kernels import Kernel, kernel_features

    key = (tuple(int(m) for m in spatial_shape), float(sxy),
           None if spacing is None else tuple(float(v) for v in spacing))
    with _POSITION_LOCK:
        kernel = _POSITION_KERNELS.get(key)
        if kernel is not None:
            _POSITION_KERNELS.move_to_end(key)
            return kernel
    f = kernel_features(Kernel(1.0, None, 1.0, sxy), None, key[0], spacing=key[2],
                        name="gaussian")
    kernel = LatticeKernel(f)
    with _POSITION_LOCK:
        _POSITION_KERNELS[key] = kernel
        while len(_POSITION_KERNELS) > POSITION_KERNELS_KEPT:
            _POSITION_KERNELS.popitem(last=False)
    return kernel

class _Pool:
    """Work arrays (float32) kept between calls, by shape, up to ``max_bytes``: a call of
    the engine allocates the same few large arrays at one image size every time (the
    tape's marginals, the reverse pass's buffers, the lattice rows), and with fresh ones
    malloc gave the memory back to the system and faulted it in again at each call. In a
    fresh process a CRF-RNN forward and backward at 360x480, K = 11 took 172 ms this way,
    108 ms with malloc told to keep its memory (``MALLOC_TRIM_THRESHOLD_``). Arrays go
    back only from the engine's own code, when nothing else holds them; the oldest shapes
    are dropped first beyond the cap."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._free = OrderedDict()  # shape -> arrays, least recently given first
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape):
        """An array of ``shape`` (contents undefined, as ``np.empty``)."""
        shape = tuple(int(x) for x in shape)
        with self._lock:
            stack = self._free.get(shape)
            if stack:
                out = stack.pop()
                self._bytes -= out.nbytes
                if not stack:
                    del self._free[shape]
                return out
        return np.empty(shape, np.float32)

    def give(self, arrays):
        """Keep ``arrays`` (float32, C-contiguous, owning their data) for later calls."""
        with self._lock:
            for a in arrays:
                if (a.dtype != np.float32 or a.base is not None or not a.flags.c_contiguous
                        or a.nbytes > self.max_bytes or a.size == 0):
                    continue
                while self._bytes + a.nbytes > self.max_bytes and self._free:
                    shape, stack = next(iter(self._free.items()))
                    self._bytes -= stack.pop(0).nbytes
                    if not stack:
                        del self._free[shape]
                self._free.setdefault(a.shape, []).append(a)
                self._free.move_to_end(a.shape)
                self._bytes += a.nbytes

    def clear(self):
        with self._lock:
            self._free.clear()
            self._bytes = 0

    def _after_fork(self):
        """A forked child starts with an empty pool and a fresh lock (another thread of
        the parent may have held it at the fork)."""
        self._lock = threading.Lock()
        self._free = OrderedDict()
        self._bytes = 0


_POOL = _Pool(256 * 2**20)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL._after_fork)


class _PassArgs:
    """The tuples the passes take for the lattice kernels (one placeholder each when there
    is none: numba needs typed tuples), and the workspace: block rows ``accs`` (R, kp) and
    lattice values (M + 1, kp) in two buffers per kernel, reused by every pass."""

    def __init__(self, kernels, n, kp):
        self.kernels = kernels
        self.n_lat = len(kernels)
        if kernels:
            self.offsets = tuple(k.lattice.offsets for k in kernels)
            self.weights = tuple(k.weights for k in kernels)
            self.acc_rows = tuple(k.lattice.acc_rows for k in kernels)
            self.row_base = tuple(k.lattice.row_base for k in kernels)
            self.accs = tuple(_POOL.take((k.lattice.n_rows, kp)) for k in kernels)
            self._lat = [_POOL.take((k.lattice.n_lattice + 1, kp)) for k in kernels]
            self._other = [_POOL.take(v.shape) for v in self._lat]
        else:
            empty = np.zeros((1, 1), np.int32)
            self.offsets = self.acc_rows = (empty,)
            self.weights = (np.zeros((1, 1), np.float32),)
            self.row_base = (np.zeros(point_blocks(n) + 1, np.int32),)
            self.accs = (_NONE,)
        self.no_lattices = (_NONE,) * max(1, self.n_lat)

    def release(self):
        """Give the workspace back to the pool (the passes are done with it)."""
        if self.kernels:
            _POOL.give([*self.accs, *self._lat, *self._other])
            self.accs, self._lat, self._other = (_NONE,), [], []

    def blurred(self, reverse):
        """Every kernel's block rows summed onto its lattice and blurred (in reverse for
        the transposed filter)."""
        if not self.kernels:
            return self.no_lattices
        out = []
        for t, kern in enumerate(self.kernels):
            kern.lattice.gather(self.accs[t], self._lat[t])
            out.append(_blur(self._lat[t], self._other[t], kern.lattice.neighbours, reverse))
        return tuple(out)


def mean_field(unary, kernels, weights, compat, n_iter, *, callback=None, trace=None,
               unary_kind="energy"):
    """Parallel-update mean field (Krähenbühl & Koltun 2011, as pydensecrf runs it).

    Parameters
    ----------
    unary : (N, K) ndarray of float32
        Unary energies ``-log p`` (or ``-logits``).
    kernels : list of LatticeKernel or ExactKernel
        Unit-weight kernels.
    weights : (M,) array_like of float
        Kernel weights.
    compat : None or (K, K) ndarray
        None for Potts; else the label compatibility ``mu`` (a penalty: the update adds
        ``-mu @ message``).
    n_iter : int
    callback : callable, optional
        ``callback(iteration, Q)`` after each iteration (``iteration`` 0 is the
        initialisation from the unary).
    trace : dict, optional
        Filled with ``"energy"`` (``n_iter + 1`` free energies, of the initial and of each
        updated ``Q``), ``"seconds"`` (per iteration, energy bookkeeping excluded) and
        ``"changed"`` (fraction of points whose most probable label changed). The energy
        costs a filtering pass per iteration.
    unary_kind : {"energy", "logits", "proba"}, default="energy"
        What ``unary`` holds: the energies ``U``; logits (``-U``); or probabilities
        (``-U = log max(p, 1e-30)``). It is only read.

    Returns
    -------
    Q : (N, K) ndarray of float32
    """
    unary = np.ascontiguousarray(unary, dtype=np.float32)
    k = unary.shape[1]
    a = logits_rows(unary, unary_kind)
    return forward(a, kernels, weights, compat, n_iter, k=k, callback=callback, trace=trace)


def logits_rows(scores, kind):
    """``(N, kp)`` padded logits the passes read (``kp`` by :func:`_padded_width`), from
    ``(N, K)`` scores of ``kind`` ("energy", "logits" or "proba"); the scores themselves
    when nothing changes."""
    scores = np.asarray(scores)
    if scores.dtype != np.float32:
        scores = scores.astype(np.float32)
    kp = _padded_width(scores.shape[1])
    if kind == "logits" and kp == scores.shape[1]:
        return np.ascontiguousarray(scores)
    # any strides (a transposed view of channels-first scores): read once, in the copy
    out = np.empty((scores.shape[0], kp), np.float32)
    _neg_unary_rows(scores, kind == "proba", kind == "energy", out)
    return out
