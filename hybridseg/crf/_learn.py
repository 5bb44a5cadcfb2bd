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
from ._lattice import point_blocks
from ._meanfield import backward, forward, logits_rows

__all__ = ["LearningProblem", "loss_and_gradient"]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _log_loss_grad(q, labels, pixel_weights, grad):
    """Weighted log loss of ``q`` at ``labels`` (``-1``: no label) and its gradient with
    respect to the logits of ``q``: ``w_i (q_i - onehot(y_i))``. The loss is summed in
    fixed blocks, so the same for any thread count."""
    n, k = q.shape
    blocks = point_blocks(n)
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


class LearningProblem:
    """One image's data for learning: unary energies, labels and unit-weight kernels.

    Parameters
    ----------
    unary : (N, K) ndarray of float32
        Unary energies ``-log p`` or ``-logits``.
    labels : (N,) ndarray of int
        Class of each point; negative for unlabelled (void) points.
    kernels : list
        Unit-weight kernels (:class:`~hybridseg.crf._meanfield.LatticeKernel` or
        :class:`~hybridseg.crf._exact.ExactKernel`).
    """

    def __init__(self, unary, labels, kernels):
        self.unary = np.ascontiguousarray(unary, dtype=np.float32)
        self.logits = logits_rows(self.unary, "energy")
        self.labels = np.ascontiguousarray(labels, dtype=np.int32)
        self.kernels = kernels

    def loss_and_gradient(self, weights, mu, n_iter, class_weights, want_mu):
        """Summed weighted log loss of ``Q_T`` and its gradients (the mean-field engine's
        forward with a tape, then its exact backward).

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
        k = self.unary.shape[1]
        potts = np.array_equal(mu, -np.eye(k))  # the fast update (mu's gradient too)
        q, tape = forward(self.logits, self.kernels, weights, None if potts else mu, n_iter,
                          k=k, tape=True, pool_tape=True)
        grad = np.empty_like(q)
        loss = _log_loss_grad(q, self.labels, class_weights.astype(np.float32), grad)
        _, grad_w, grad_mu = backward(tape, grad, want_mu=want_mu)
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
