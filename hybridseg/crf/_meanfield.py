"""Mean-field inference of the fully connected CRF, on lattices built once per image."""

from __future__ import annotations

import time

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ..utils._parallel import serialized_launches
from ._kernels import NORM_EPS
from ._lattice import Lattice, _blur, reduction_blocks


@intrinsic
def _int32_bits_as_float32(typingctx, x):
    """Reinterpret the bits of an int32 as a float32 (a no-op that vectorises)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _exp_nonpos(x):
    """``exp(x)`` in float32 for ``x <= 0``, branch-free so that row loops vectorise.

    Cody-Waite range reduction ``x = n ln2 + r`` with ``|r| <= ln2 / 2``, Cephes' degree-7
    polynomial for ``e^r`` and the exponent ``2^n`` built from its bits: relative error
    below 1e-7 (measured on [-80, 0]), like ``expf``. Arguments below -80 give ``exp(-80)``
    (~2e-35) instead of smaller values: no softmax over max-subtracted rows can tell them
    apart, and it keeps probabilities and everything filtered from them clear of float32
    denormals, which are very slow to compute with.
    """
    lo = np.float32(-80.0)
    if x < lo:
        x = lo
    t = x * np.float32(1.44269504088896341)
    # Round to nearest (t <= 0): truncation of t - 1/2; vectorises, unlike a call to rint.
    n = np.int32(t - np.float32(0.5))
    nf = np.float32(n)
    r = x - nf * np.float32(0.693359375)
    r = r + nf * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    scale = _int32_bits_as_float32((n + np.int32(127)) << np.int32(23))
    return p * scale


@numba.njit(cache=True, nogil=True, inline="always")
def _softmax_inplace(row):
    """Softmax of one row of float32 in place (max-subtracted, like pydensecrf)."""
    k = row.shape[0]
    mx = row[0]
    for c in range(1, k):
        if row[c] > mx:
            mx = row[c]
    s = np.float32(0.0)
    for c in range(k):
        row[c] = _exp_nonpos(row[c] - mx)
    for c in range(k):
        s += row[c]
    inv = np.float32(1.0) / s
    for c in range(k):
        row[c] *= inv


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _softmax_rows(logits, out):
    """Row-wise softmax of ``(N, K)`` float32 into ``out``."""
    n, k = logits.shape
    for i in prange(n):
        for c in range(k):
            out[i, c] = logits[i, c]
        _softmax_inplace(out[i])


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _potts_update(neg_unary, messages, q):
    """``q = softmax(-U + messages)`` row by row, then ``messages = 0`` for the next pass.

    With Potts compatibility the update rewards agreeing with the kernel-weighted
    neighbours (pydensecrf's ``PottsCompatibility``: ``-U - (-w Q~)``).
    """
    n, k = q.shape
    for i in prange(n):
        for c in range(k):
            q[i, c] = neg_unary[i, c] + messages[i, c]
            messages[i, c] = 0.0
        _softmax_inplace(q[i])


# Flags for the fused update: sums may be reassociated (and so vectorised); no NaN or inf
# reaches it (unaries are finite, the exponential is clamped).
_FASTMATH = {"reassoc", "nsz", "contract", "nnan", "ninf"}


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FASTMATH)
def _slice_potts_update(neg_unary, offsets, weights, lattices, q, k, n_chunks):
    """``q = softmax(-U + sum_t slice_t(lattices[t]))`` row by row: the slices of every
    kernel fused with the Potts update, so that no message array is written or read.

    ``offsets``, ``weights`` and ``lattices`` are tuples with one entry per kernel (its
    lattice's vertex offsets, slice weights and blurred lattice values). Rows may be padded
    past the ``k`` labels (so that the row loops vectorise without a scalar tail): padded
    entries of ``neg_unary`` must be very negative, and those of ``q`` come out zero.
    """
    n, kp = neg_unary.shape
    width = q.shape[1]  # kp, or k for the last iteration's unpadded output
    n_ker = len(offsets)
    for ch in prange(n_chunks):
        row = np.empty(kp, np.float32)
        for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            for c in range(kp):
                row[c] = neg_unary[i, c]
            for t in range(n_ker):
                off = offsets[t]
                w = weights[t]
                lat = lattices[t]
                for r in range(off.shape[1]):
                    o = off[i, r]
                    wr = w[i, r]
                    for c in range(kp):
                        row[c] += wr * lat[o, c]
            _softmax_inplace(row)
            for c in range(k, kp):
                row[c] = 0.0
            for c in range(width):
                q[i, c] = row[c]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FASTMATH)
def _slice_sum(offsets, weights, lattices, coefs, other, want_dots, out, dots, n_chunks):
    """``out = sum_t coefs[t] S_t`` with ``S_t`` the slice of kernel ``t`` (its vertex
    ``offsets``, slice ``weights`` and blurred ``lattices``), every kernel in one pass over
    the rows; with ``want_dots``, also ``dots[chunk, t] = <S_t, other>`` over each chunk's
    rows (float64), the products a kernel weight's gradient needs. Nothing is allocated
    per row beyond one scratch row per chunk.
    """
    n, k = out.shape
    n_ker = len(offsets)
    for ch in prange(n_chunks):
        row = np.empty(k, np.float32)
        acc = np.empty(k, np.float32)
        for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            for c in range(k):
                acc[c] = 0.0
            for t in range(n_ker):
                off = offsets[t]
                w = weights[t]
                lat = lattices[t]
                for c in range(k):
                    row[c] = 0.0
                for r in range(off.shape[1]):
                    o = off[i, r]
                    wr = w[i, r]
                    for c in range(k):
                        row[c] += wr * lat[o, c]
                a = coefs[t]
                for c in range(k):
                    acc[c] += a * row[c]
                if want_dots:
                    d = 0.0
                    for c in range(k):
                        d += np.float64(row[c]) * other[i, c]
                    dots[ch, t] += d
            for c in range(k):
                out[i, c] = acc[c]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _neg_unary_rows(scores, take_log, out):
    """``out[:, :k] = log(max(scores, 1e-30))`` (or ``scores``), padding columns ``-1e30``.

    One pass from the caller's scores to the padded ``-U`` the fused update reads, so that
    no intermediate ``(N, K)`` array is allocated (fresh large arrays cost page faults).
    """
    n, k = scores.shape
    kp = out.shape[1]
    for i in prange(n):
        for c in range(k):
            v = scores[i, c]
            if take_log:
                v = np.log(max(v, np.float32(1e-30)))
            out[i, c] = v
        for c in range(k, kp):
            out[i, c] = np.float32(-1e30)


def _padded_width(k):
    """Row width for ``k`` labels: a multiple of 8 when that wastes at most a quarter."""
    kp = -(-k // 8) * 8
    return kp if 4 * (kp - k) <= k else k


class PairwiseKernel:
    """One Gaussian kernel over per-point features, with pydensecrf's symmetric
    normalisation folded into its splat and slice weights.

    ``filter(Q)`` returns ``weight * D^-1/2 (K * (D^-1/2 Q))`` where ``K`` is the lattice
    filter and ``D = K * 1`` (each point's total kernel mass).
    """

    def __init__(self, features, weight):
        self.lattice = Lattice(features)
        lat = self.lattice
        ones = np.ones((lat.n_points, 1), np.float32)
        mass = lat.filter(ones)[:, 0]
        norm = (1.0 / np.sqrt(mass.astype(np.float64) + NORM_EPS)).astype(np.float32)
        self.splat_weights = np.ascontiguousarray(lat.weights * norm[:, None])
        self.weight = float(weight)
        self.slice_weights = np.ascontiguousarray(
            lat.weights * (norm[:, None] * np.float32(lat.alpha * weight))
        )

    def splat_blur(self, q):
        """Splat ``q`` with the normalised splat weights and blur it: ``(M + 1, C)``."""
        lat = self.lattice
        return _blur(lat.splat(self.splat_weights, q), lat.neighbours, False)

    def filter_add(self, q, out, *, transpose=False):
        """``out += weight * normalised filter of q`` (or of its transpose)."""
        return self.lattice.filter(
            q, splat_weights=self.splat_weights, slice_weights=self.slice_weights, out=out,
            transpose=transpose,
        )


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _free_energy(unary, q, messages, mu, potts):
    """Mean-field free energy ``E_Q[E] - H(Q)`` of ``q`` given its ``messages``.

    ``messages`` is ``sum_m w_m K_m q``; the pairwise term is ``1/2 <q, messages mu>``
    (``-1/2 <q, messages>`` for Potts, whose ``mu`` is ``-I``). Summed in fixed blocks,
    so the same for any thread count.
    """
    n, k = q.shape
    blocks = reduction_blocks(n)
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


def mean_field(unary, kernels, compat, n_iter, *, callback=None, trace=None,
               unary_kind="energy"):
    """Parallel-update mean field (Krähenbühl & Koltun 2011, as pydensecrf runs it).

    Parameters
    ----------
    unary : (N, K) ndarray of float32
        Unary energies ``-log p`` (or ``-logits``).
    kernels : list of PairwiseKernel
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
        costs a filtering pass per iteration on the fused Potts path, and only a last
        one otherwise (the update's own messages serve).
    unary_kind : {"energy", "logits", "proba"}, default="energy"
        What ``unary`` holds: the energies ``U``; logits (``-U``); or probabilities
        (``-U = log max(p, 1e-30)``). The last two save ``(N, K)`` copies. It is only read.

    Returns
    -------
    Q : (N, K) ndarray of float32
    """
    unary = np.ascontiguousarray(unary, dtype=np.float32)
    n, k = unary.shape
    if compat is None and len(kernels) > 0 and all(
            isinstance(kernel, PairwiseKernel) for kernel in kernels):
        kp = _padded_width(k)
        if unary_kind == "logits" and kp == k:
            neg_unary = unary
        else:
            neg_unary = np.empty((n, kp), np.float32)
            _neg_unary_rows(unary, unary_kind == "proba", neg_unary)
            if unary_kind == "energy":
                np.negative(neg_unary[:, :k], out=neg_unary[:, :k])
        return _mean_field_potts(neg_unary, k, kernels, n_iter, callback, trace)
    if unary_kind == "logits":
        neg_unary = unary
    elif unary_kind == "proba":
        neg_unary = np.empty((n, k), np.float32)
        _neg_unary_rows(unary, True, neg_unary)
    else:
        neg_unary = -unary
    q = np.empty((n, k), np.float32)
    _softmax_rows(neg_unary, q)
    if callback is not None:
        callback(0, q)
    messages = np.zeros((n, k), np.float32)
    logits = np.empty((n, k), np.float32) if compat is not None else None
    mu = None if compat is None else np.ascontiguousarray(compat, dtype=np.float32)
    if trace is not None:
        trace.update(energy=[], seconds=[], changed=[])
        mu64 = np.zeros((k, k)) if mu is None else mu.astype(np.float64)
        energy_unary = -neg_unary
        labels = q.argmax(1)
    for it in range(n_iter):
        if trace is not None:
            start = time.perf_counter()
        for kernel in kernels:
            kernel.filter_add(q, messages)
        if trace is not None:
            elapsed = time.perf_counter() - start
            trace["energy"].append(_free_energy(energy_unary, q, messages, mu64, mu is None))
            start = time.perf_counter()
        if mu is None:
            _potts_update(neg_unary, messages, q)
        else:
            np.subtract(neg_unary, messages @ mu.T, out=logits)
            _softmax_rows(logits, q)
            messages[:] = 0.0
        if trace is not None:
            trace["seconds"].append(elapsed + time.perf_counter() - start)
            new_labels = q.argmax(1)
            trace["changed"].append(float(np.mean(new_labels != labels)))
            labels = new_labels
        if callback is not None:
            callback(it + 1, q)
    if trace is not None:
        for kernel in kernels:
            kernel.filter_add(q, messages)
        trace["energy"].append(_free_energy(energy_unary, q, messages, mu64, mu is None))
        messages[:] = 0.0
    return q


def _mean_field_potts(neg_unary, k, kernels, n_iter, callback, trace):
    """Potts mean field with each iteration's slices fused into the update, on rows padded
    to a vector-friendly width (``neg_unary`` is ``(N, kp)``, padded with -1e30; the last
    iteration writes the unpadded ``(N, k)`` result directly). With a ``trace``, the
    messages the energy needs are computed by a separate filtering pass (``Q`` itself is
    the same as without one)."""
    n, kp = neg_unary.shape
    q = np.empty((n, kp), np.float32)
    _softmax_rows(neg_unary, q)
    q[:, k:] = 0.0
    if callback is not None:
        callback(0, q[:, :k])
    offsets = tuple(kernel.lattice.offsets for kernel in kernels)
    slice_weights = tuple(kernel.slice_weights for kernel in kernels)
    n_chunks = reduction_blocks(n)

    def energy():
        qk = np.ascontiguousarray(q[:, :k])
        messages = np.zeros((n, k), np.float32)
        for kernel in kernels:
            kernel.filter_add(qk, messages)
        return _free_energy(energy_unary, qk, messages, mu64, True)

    if trace is not None:
        trace.update(energy=[], seconds=[], changed=[])
        mu64 = np.zeros((k, k))
        energy_unary = np.ascontiguousarray(-neg_unary[:, :k])
        labels = q[:, :k].argmax(1)
    for it in range(n_iter):
        if trace is not None:
            trace["energy"].append(energy())
            start = time.perf_counter()
        lattices = tuple(kernel.splat_blur(q) for kernel in kernels)
        if it == n_iter - 1 and kp != k:
            q = np.empty((n, k), np.float32)
        _slice_potts_update(neg_unary, offsets, slice_weights, lattices, q, k, n_chunks)
        if trace is not None:
            trace["seconds"].append(time.perf_counter() - start)
            new_labels = q[:, :k].argmax(1)
            trace["changed"].append(float(np.mean(new_labels != labels)))
            labels = new_labels
        if callback is not None:
            callback(it + 1, q[:, :k])
    if trace is not None:
        trace["energy"].append(energy())
    return q if q.shape[1] == k else np.ascontiguousarray(q[:, :k])
