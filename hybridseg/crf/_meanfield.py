"""Mean-field inference of the fully connected CRF, on lattices built once per image."""

from __future__ import annotations

import time

import numba
import numpy as np
from numba import prange

from ._lattice import Lattice

# pydensecrf's symmetric normalisation adds this to the filtered ones before the square root.
_NORM_EPS = 1e-20


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
        e = np.exp(row[c] - mx)
        row[c] = e
        s += e
    inv = np.float32(1.0) / s
    for c in range(k):
        row[c] *= inv


@numba.njit(cache=True, nogil=True, parallel=True)
def _softmax_rows(logits, out):
    """Row-wise softmax of ``(N, K)`` float32 into ``out``."""
    n, k = logits.shape
    for i in prange(n):
        for c in range(k):
            out[i, c] = logits[i, c]
        _softmax_inplace(out[i])


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
        norm = (1.0 / np.sqrt(mass.astype(np.float64) + _NORM_EPS)).astype(np.float32)
        self.splat_weights = np.ascontiguousarray(lat.weights * norm[:, None])
        self.weight = float(weight)
        self.slice_weights = np.ascontiguousarray(
            lat.weights * (norm[:, None] * np.float32(lat.alpha * weight))
        )

    def filter_add(self, q, out, *, transpose=False):
        """``out += weight * normalised filter of q`` (or of its transpose)."""
        return self.lattice.filter(
            q, splat_weights=self.splat_weights, slice_weights=self.slice_weights, out=out,
            transpose=transpose,
        )


@numba.njit(cache=True, nogil=True, parallel=True)
def _free_energy(unary, q, messages, mu, potts):
    """Mean-field free energy ``E_Q[E] - H(Q)`` of ``q`` given its ``messages``.

    ``messages`` is ``sum_m w_m K_m q``; the pairwise term is ``1/2 <q, messages mu>``
    (``-1/2 <q, messages>`` for Potts, whose ``mu`` is ``-I``).
    """
    n, k = q.shape
    total = 0.0
    for i in prange(n):
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
        total += acc
    return total


def mean_field(unary, kernels, compat, n_iter, *, callback=None, trace=None):
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
        of ``Q`` comes from the messages the next update computes anyway; only the last
        one costs an extra filtering pass.

    Returns
    -------
    Q : (N, K) ndarray of float32
    """
    neg_unary = np.ascontiguousarray(-unary, dtype=np.float32)
    n, k = neg_unary.shape
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
        energy_unary = np.ascontiguousarray(unary, dtype=np.float32)
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
