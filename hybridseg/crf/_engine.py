"""The public face of the dense CRF's mean-field engine (``_meanfield``): what ``deep/``
and users call, importable without compiling anything."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_field_backward", "mean_field_forward"]


def mean_field_forward(logits, kernels, weights, compat, n_iter, *, output="proba",
                       tape=False, keep_messages=False):
    """The dense CRF's parallel mean field on one image, from logits.

    ``Z_t = a - M_t mu^T`` with ``M_t = sum_m w_m K_m Q_{t-1}``, ``Q_t = softmax(Z_t)``,
    ``Q_0 = softmax(a)``; the same engine ``DenseCRF.refine`` and ``DenseCRF.fit`` run.

    Parameters
    ----------
    logits : (N, K) array_like of float
        ``a = -U``, the unary logits of the N points.
    kernels : sequence of LatticeKernel
        Unit-weight normalised kernels on the same N points.
    weights : (M,) array_like of float
        The kernel weights ``w_m``.
    compat : (K, K) array_like or None
        The label compatibility ``mu`` (a penalty); None for Potts (``mu = -I``).
    n_iter : int
    output : {"proba", "logits"}, default="proba"
        Return ``Q_T`` or ``Z_T``.
    tape : bool, default=False
        Also return what :func:`mean_field_backward` needs (``T`` arrays of ``(N, K)``).
    keep_messages : bool, default=False
        Keep the messages on the tape too (for the gradient of ``compat``).

    Returns
    -------
    out : (N, K) ndarray of float32
    tape : Tape, only with ``tape=True``
    """
    from ._meanfield import _padded_width, forward, logits_rows

    a = np.asarray(logits, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"logits must be (N, K), got shape {a.shape}")
    if output not in ("proba", "logits"):
        raise ValueError(f"output must be 'proba' or 'logits', got {output!r}")
    k = a.shape[1]
    mu = None if compat is None else np.asarray(compat, dtype=np.float32)
    if mu is not None and mu.shape != (k, k):
        raise ValueError(f"compat must be ({k}, {k}), got shape {mu.shape}")
    return forward(logits_rows(a, "logits", _padded_width(k)), list(kernels), weights, mu,
                   int(n_iter), k=k, output=output, tape=tape, keep_messages=keep_messages)


def mean_field_backward(tape, grad_z, *, want_mu=False):
    """The exact gradient of :func:`mean_field_forward` from ``dL/dZ_T``.

    Parameters
    ----------
    tape : Tape
        From ``mean_field_forward(..., tape=True)``.
    grad_z : (N, K) array_like of float
        ``dL/dZ_T`` (for a loss on ``Q_T``, pass it through the softmax first).
    want_mu : bool, default=False
        Also the gradient of ``compat`` (the tape must keep the messages).

    Returns
    -------
    grad_logits : (N, K) ndarray of float32
    grad_weights : (M,) ndarray of float64
    grad_compat : (K, K) ndarray of float64, or None
    """
    from ._meanfield import backward

    return backward(tape, grad_z, want_mu=want_mu)
