"""Learning a dense CRF's kernel weights and label compatibility by gradient descent
through the unrolled mean field (the learning of Krähenbühl & Koltun, ICML 2013).

The forward pass runs ``T`` parallel mean-field updates, keeping every ``Q_t``::

    Q_0 = softmax(-U)
    M_t = sum_m w_m K_m Q_{t-1}                (K_m: a normalised Gaussian kernel)
    Q_t = softmax(-U - M_t mu^T)               (mu = -I for Potts)

and the loss is the log loss of ``Q_T`` on the labelled pixels (optionally class
weighted). The backward pass walks the updates in reverse; with ``G_t = dL/da_t`` for the
logits ``a_t`` of update ``t``:

    dL/dmu   += -G_t^T M_t
    H_m       = K_m^T (G_t mu)                 (the transposed filter)
    dL/dw_m  += -<H_m, Q_{t-1}>
    dL/dQ_{t-1} = -sum_m w_m H_m,  G_{t-1} = Q ⊙ (dL/dQ - rowsum(dL/dQ ⊙ Q))

Each kernel's transpose is applied exactly (the lattice blur run in reverse order), so the
gradient is the gradient of what inference computes, not of an idealised model. The
kernels' standard deviations are not learned: the lattice is not differentiable in its
features (tune them by cross-validation around ``fit``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..utils._parallel import serialized_launches
from ._lattice import reduction_blocks
from ._meanfield import _FASTMATH, _softmax_inplace, _softmax_rows

__all__ = ["LearningProblem", "loss_and_gradient"]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _softmax_backward(q, grad_q, out):
    """``out = q * (grad_q - sum_c grad_q * q)``, the gradient through a row softmax."""
    n, k = q.shape
    for i in prange(n):
        s = np.float32(0.0)
        for c in range(k):
            s += grad_q[i, c] * q[i, c]
        for c in range(k):
            out[i, c] = q[i, c] * (grad_q[i, c] - s)


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _log_loss_grad(q, labels, pixel_weights, grad):
    """Weighted log loss of ``q`` at ``labels`` (``-1``: no label) and its gradient with
    respect to the logits of ``q``: ``w_i (q_i - onehot(y_i))``. The loss is summed in
    fixed blocks, so the same for any thread count."""
    n, k = q.shape
    blocks = reduction_blocks(n)
    partial = np.zeros(blocks)
    for b in prange(blocks):
        for i in range(b * n // blocks, (b + 1) * n // blocks):
            y = labels[i]
            if y < 0:
                for c in range(k):
                    grad[i, c] = 0.0
                continue
            w = pixel_weights[labels[i]]
            partial[b] += -w * np.log(max(np.float64(q[i, y]), 1e-30))
            for c in range(k):
                grad[i, c] = w * q[i, c]
            grad[i, y] -= w
    total = 0.0
    for b in range(blocks):
        total += partial[b]
    return total


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FASTMATH)
def _update(neg_unary, msg, mu, potts, q):
    """``q = softmax(-U - msg mu^T)`` (``-U + msg`` for Potts, whose ``mu`` is ``-I``)."""
    n, k = q.shape
    for i in prange(n):
        for c in range(k):
            if potts:
                q[i, c] = neg_unary[i, c] + msg[i, c]
            else:
                acc = neg_unary[i, c]
                for c2 in range(k):
                    acc -= mu[c, c2] * msg[i, c2]
                q[i, c] = acc
        _softmax_inplace(q[i])


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FASTMATH)
def _times_mu(grad, mu, potts, out):
    """``out = grad mu`` (``-grad`` for Potts)."""
    n, k = grad.shape
    for i in prange(n):
        for c in range(k):
            if potts:
                out[i, c] = -grad[i, c]
            else:
                acc = np.float32(0.0)
                for c2 in range(k):
                    acc += grad[i, c2] * mu[c2, c]
                out[i, c] = acc


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _dot_and_axpy(h, q, weight, grad_q):
    """Return ``<h, q>`` (float64, summed in fixed blocks: the same for any thread count)
    and do ``grad_q -= weight * h``, in one pass."""
    n, k = h.shape
    blocks = reduction_blocks(n)
    partial = np.zeros(blocks)
    for b in prange(blocks):
        for i in range(b * n // blocks, (b + 1) * n // blocks):
            acc = 0.0
            for c in range(k):
                acc += np.float64(h[i, c]) * q[i, c]
                grad_q[i, c] -= weight * h[i, c]
            partial[b] += acc
    total = 0.0
    for b in range(blocks):
        total += partial[b]
    return total


class LearningProblem:
    """One image's data for learning: unary energies, labels and unit-weight kernels.

    Parameters
    ----------
    unary : (N, K) ndarray of float32
        Unary energies ``-log p`` or ``-logits``.
    labels : (N,) ndarray of int
        Class of each point; negative for unlabelled (void) points.
    kernels : list
        Kernels with ``filter_add(q, out, *, transpose)`` and weight 1
        (:class:`~hybridseg.crf._meanfield.PairwiseKernel` or
        :class:`~hybridseg.crf._exact.ExactKernel`).
    """

    def __init__(self, unary, labels, kernels):
        self.unary = np.ascontiguousarray(unary, dtype=np.float32)
        self.neg_unary = -self.unary
        self.labels = np.ascontiguousarray(labels, dtype=np.int32)
        self.kernels = kernels

    def loss_and_gradient(self, weights, mu, n_iter, class_weights, want_mu):
        """Summed weighted log loss of ``Q_T`` and its gradients.

        Parameters
        ----------
        weights : (M,) ndarray
            Kernel weights.
        mu : (K, K) ndarray
            Label compatibility (penalty convention; ``-I`` for Potts).
        n_iter : int
            Mean-field iterations ``T``.
        class_weights : (K,) ndarray of float64
            Weight of a pixel of each class in the loss.
        want_mu : bool
            Whether to compute the gradient with respect to ``mu``.

        Returns
        -------
        loss : float
        grad_weights : (M,) ndarray of float64
        grad_mu : (K, K) ndarray of float64 or None
        """
        n, k = self.unary.shape
        potts = not want_mu and np.array_equal(mu, -np.eye(k))
        mu32 = np.ascontiguousarray(mu, dtype=np.float32)
        qs = [np.empty((n, k), np.float32)]
        _softmax_rows(self.neg_unary, qs[0])
        msgs = []
        scratch = np.empty((n, k), np.float32)
        for _ in range(n_iter):
            msg = np.zeros((n, k), np.float32)
            for w, kernel in zip(weights, self.kernels):
                if w != 0.0:
                    scratch[:] = 0.0
                    kernel.filter_add(qs[-1], scratch)
                    _dot_and_axpy(scratch, qs[-1], np.float32(-w), msg)
            q = np.empty((n, k), np.float32)
            _update(self.neg_unary, msg, mu32, potts, q)
            qs.append(q)
            msgs.append(msg if want_mu else None)
        grad = np.empty((n, k), np.float32)
        loss = _log_loss_grad(qs[-1], self.labels, class_weights.astype(np.float32), grad)
        grad_w = np.zeros(len(self.kernels))
        grad_mu = np.zeros((k, k)) if want_mu else None
        grad_q = np.empty((n, k), np.float32)
        g_mu = np.empty((n, k), np.float32)
        for t in range(n_iter, 0, -1):
            if want_mu:
                grad_mu -= grad.T.astype(np.float64) @ msgs[t - 1].astype(np.float64)
            _times_mu(grad, mu32, potts, g_mu)
            q_prev = qs[t - 1]
            grad_q[:] = 0.0
            for m, kernel in enumerate(self.kernels):
                scratch[:] = 0.0
                kernel.filter_add(g_mu, scratch, transpose=True)
                grad_w[m] -= _dot_and_axpy(scratch, q_prev, np.float32(weights[m]), grad_q)
            if t > 1:
                _softmax_backward(q_prev, grad_q, grad)
        return float(loss), grad_w, grad_mu


def loss_and_gradient(problems, weights, mu, n_iter, class_weights, want_mu, n_jobs=None):
    """Sum :meth:`LearningProblem.loss_and_gradient` over images (joblib threads)."""
    from ..utils._parallel import parallel_map

    args = (weights, mu, n_iter, class_weights, want_mu)
    parts = parallel_map(lambda p: p.loss_and_gradient(*args), problems, n_jobs,
                         numba_kernels=True)
    loss = sum(p[0] for p in parts)
    grad_w = sum(p[1] for p in parts)
    grad_mu = sum(p[2] for p in parts) if want_mu else None
    return loss, grad_w, grad_mu
