"""The dense CRF with explicit N x N Gaussian kernels: slow, exact, the lattice's oracle."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from ..utils._scores import softmax

__all__ = ["exact_filter", "exact_mean_field"]


def exact_filter(features, values):
    """``sum_j exp(-|f_i - f_j|^2 / 2) v_j`` for every ``i`` (the self term included).

    Parameters
    ----------
    features : (N, d) array_like
    values : (N, C) array_like

    Returns
    -------
    out : (N, C) ndarray of float64
    """
    f = np.asarray(features, np.float64)
    kernel = np.exp(-0.5 * cdist(f, f, "sqeuclidean"))
    return kernel @ np.asarray(values, np.float64)


def exact_mean_field(unary, kernels, mu, n_iter):
    """Mean field with symmetrically normalised exact kernels (as the lattice version).

    Parameters
    ----------
    unary : (N, K) ndarray
    kernels : list of ((N, d) features, weight)
    mu : None (Potts) or (K, K) ndarray
    n_iter : int

    Returns
    -------
    Q : (N, K) ndarray of float64
    """
    unary = np.asarray(unary, np.float64)
    mats = []
    for f, weight in kernels:
        f = np.asarray(f, np.float64)
        kernel = np.exp(-0.5 * cdist(f, f, "sqeuclidean"))
        norm = 1.0 / np.sqrt(kernel.sum(1) + 1e-20)
        mats.append(weight * (norm[:, None] * kernel * norm[None, :]))
    q = softmax(-unary)
    for _ in range(n_iter):
        msg = sum(m @ q for m in mats) if mats else np.zeros_like(q)
        logits = -unary + msg if mu is None else -unary - msg @ mu.T
        q = softmax(logits)
    return q
