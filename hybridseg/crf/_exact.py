"""The dense CRF with explicit N x N Gaussian kernels: slow, exact, the lattice's oracle."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from ._kernels import NORM_EPS

__all__ = ["ExactKernel", "exact_filter"]


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


class ExactKernel:
    """The symmetrically normalised Gaussian kernel as an explicit ``(N, N)`` matrix.

    A drop-in for :class:`~hybridseg.crf._meanfield.LatticeKernel` (same ``filter``)
    that :func:`~hybridseg.crf._meanfield.mean_field` and the learning code accept: with it
    the mean field is exact, and the matrix is symmetric positive semi-definite, the case in
    which parallel mean-field updates never raise the free energy.

    Parameters
    ----------
    features : (N, d) array_like
        Point features, already divided by the kernel's standard deviations.
    weight : float
    """

    alpha = 1.0  # the mean field's scale of the kernel's messages (a lattice's slice factor)

    def __init__(self, features, weight=1.0):
        f = np.asarray(features, np.float64)
        kernel = np.exp(-0.5 * cdist(f, f, "sqeuclidean"))
        norm = 1.0 / np.sqrt(kernel.sum(1) + NORM_EPS)
        self.weight = float(weight)
        self.matrix = (weight * (norm[:, None] * kernel * norm[None, :])).astype(np.float32)

    def filter(self, values, *, transpose=False):
        """``weight * K values`` (``K`` is symmetric, so ``transpose`` changes nothing)."""
        return self.matrix @ np.asarray(values, np.float32)
