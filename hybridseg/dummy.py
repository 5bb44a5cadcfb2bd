"""Baselines that look at no pixel: the floor any real method must clear.

``DummySegmenter`` predicts from the class frequencies of the training labels, globally
or per image position (in road scenes "sky at the top, road at the bottom" is already a
respectable mean IoU); ``IdentityRefiner`` returns its unaries unchanged, the "no
refinement" row of a comparison. Like scikit-learn's ``DummyClassifier``.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .base import BaseRefiner, BaseSegmenter
from .utils._param_validation import Interval, StrOptions
from .utils._scores import to_proba
from .utils._validation import check_image, check_images, check_scores

__all__ = ["DummySegmenter", "IdentityRefiner"]


def _resize_nearest_rows_cols(h, w, grid):
    """Index arrays that map an (h, w) image onto a (g, g) grid of relative positions."""
    rows = np.minimum((np.arange(h) + 0.5) * grid / h, grid - 1).astype(np.intp)
    cols = np.minimum((np.arange(w) + 0.5) * grid / w, grid - 1).astype(np.intp)
    return rows, cols


class DummySegmenter(BaseSegmenter):
    """Segmenter that ignores the pixels and predicts from label statistics alone.

    Parameters
    ----------
    strategy : {"prior", "most_frequent", "uniform", "spatial_prior"}, default="prior"
        - ``"prior"``: every pixel gets the class frequencies of the training pixels;
        - ``"most_frequent"``: every pixel gets the most frequent class, with probability 1;
        - ``"uniform"``: every class gets ``1 / K``;
        - ``"spatial_prior"``: class frequencies at each relative image position (images
          of any size are mapped onto a ``grid_size x grid_size`` grid), smoothed with
          ``alpha`` pseudo-counts drawn from the global prior.
    n_classes : int, optional
        K. By default one more than the largest label in ``y``.
    grid_size : int, default=32
        Resolution of the spatial prior.
    alpha : float, default=1.0
        Pseudo-counts per grid cell for ``"spatial_prior"``.
    ignore_index : int, default=255
        Void label, not counted.

    Attributes
    ----------
    n_classes_ : int
        K.
    class_prior_ : (K,) ndarray of float64
        Frequency of each class among the training pixels.
    spatial_prior_ : (grid_size, grid_size, K) ndarray of float32
        With ``strategy="spatial_prior"`` only: class probabilities per grid cell.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.dummy import DummySegmenter
    >>> X = [np.zeros((4, 4), np.uint8)]
    >>> y = [np.array([[0, 0, 0, 0]] * 2 + [[1, 1, 1, 1]] * 2)]
    >>> seg = DummySegmenter(strategy="spatial_prior", grid_size=2, alpha=0).fit(X, y)
    >>> seg.predict(X)[0][:, 0].tolist()
    [0, 0, 1, 1]
    """

    _parameter_constraints = {
        "strategy": [StrOptions({"prior", "most_frequent", "uniform", "spatial_prior"})],
        "n_classes": [None, Interval(numbers.Integral, 1, None)],
        "grid_size": [Interval(numbers.Integral, 1, None)],
        "alpha": [Interval(numbers.Real, 0, None)],
        "ignore_index": [numbers.Integral],
    }

    def __init__(
        self, strategy="prior", *, n_classes=None, grid_size=32, alpha=1.0, ignore_index=255
    ):
        self.strategy = strategy
        self.n_classes = n_classes
        self.grid_size = grid_size
        self.alpha = alpha
        self.ignore_index = ignore_index

    def fit(self, X, y):
        """Count the classes of the training pixels.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images (only their sizes are used).
        y : sequence of (H, W) array_like of int
            Label maps; ``ignore_index`` marks void pixels.

        Returns
        -------
        self
        """
        self._validate_params()
        _images, labels = self._check_images_labels(X, y, n_classes=self.n_classes)
        k = self._n_classes_from(labels)
        counts = np.zeros(k, np.float64)
        g = self.grid_size
        cell_counts = np.zeros((g * g, k), np.float64)
        for m in labels:
            valid = m != self.ignore_index
            counts += np.bincount(m[valid].ravel().astype(np.intp), minlength=k)[:k]
            if self.strategy == "spatial_prior":
                rows, cols = _resize_nearest_rows_cols(*m.shape, g)
                cell = (rows[:, None] * g + cols[None, :])[valid]
                np.add.at(cell_counts, (cell, m[valid].astype(np.intp)), 1)
        if counts.sum() == 0:
            raise ValueError("y holds no labelled pixel: every pixel is ignore_index")
        self.n_classes_ = k
        self.class_prior_ = counts / counts.sum()
        if self.strategy == "spatial_prior":
            smoothed = cell_counts + self.alpha * self.class_prior_[None, :]
            totals = smoothed.sum(1, keepdims=True)
            # Cells no training pixel reached (possible with alpha=0) fall back to the prior.
            empty = totals[:, 0] == 0
            smoothed[empty] = self.class_prior_
            totals[empty] = 1.0
            self.spatial_prior_ = (smoothed / totals).reshape(g, g, k).astype(np.float32)
        return self

    def _pixel_distribution(self):
        k = self.n_classes_
        if self.strategy == "uniform":
            return np.full(k, 1.0 / k, np.float32)
        if self.strategy == "most_frequent":
            out = np.zeros(k, np.float32)
            out[np.argmax(self.class_prior_)] = 1.0
            return out
        return self.class_prior_.astype(np.float32)

    def predict_proba(self, X):
        """Class probabilities of every pixel.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray

        Returns
        -------
        proba : list of (H, W, K) ndarray of float32
        """
        check_is_fitted(self)
        images = check_images(X)
        out = []
        for im in images:
            h, w = im.shape[:2]
            if self.strategy == "spatial_prior":
                rows, cols = _resize_nearest_rows_cols(h, w, self.grid_size)
                out.append(np.ascontiguousarray(self.spatial_prior_[rows][:, cols]))
            else:
                p = self._pixel_distribution()
                out.append(np.ascontiguousarray(np.broadcast_to(p, (h, w, p.size))))
        return out


class IdentityRefiner(BaseRefiner):
    """Refiner that returns the unaries' probabilities unchanged (the "no CRF" baseline).

    Parameters
    ----------
    n_jobs : int, optional
        Accepted for symmetry with other refiners.

    Attributes
    ----------
    n_classes_ : int
        K, recorded by ``fit``.
    """

    _parameter_constraints = {"n_jobs": [None, numbers.Integral]}

    def __init__(self, *, n_jobs=None):
        self.n_jobs = n_jobs

    def refine(self, image, scores, *, kind="proba"):
        """Return ``scores`` as probabilities.

        Parameters
        ----------
        image : (H, W) or (H, W, C) array_like
            The image (only its size is checked).
        scores : (H, W, K) array_like of float
            Class scores.
        kind : {"proba", "logits"}, default="proba"

        Returns
        -------
        proba : (H, W, K) ndarray of float32
        """
        im = check_image(image, name="image")
        s = check_scores(scores, kind=kind, spatial_shape=im.shape[:2])
        return np.ascontiguousarray(to_proba(s, kind), dtype=np.float32)
