"""Base classes for the two roles every stage plays: segmenter and refiner.

Subclass ``BaseSegmenter`` or ``BaseRefiner`` (both are scikit-learn
``BaseEstimator`` subclasses) to get the shared behaviour:

- ``__init__`` only stores arguments; ``_validate_params()`` checks them against the class's
  ``_parameter_constraints`` on entry to ``fit``;
- ``score`` is the mean IoU (scikit-learn's ``ClassifierMixin`` is deliberately not used: its
  accuracy ``score`` would flatten label maps);
- a segmenter implements ``fit(X, y)`` and ``predict_proba(X)``; it gets ``predict``
  (argmax), ``transform`` (a ``Unaries``) and ``score``;
- a refiner implements ``refine(image, scores, *, kind)``; it gets a no-op ``fit(U, y)``
  that records the number of classes, ``predict_proba(U)`` (``refine`` over the images,
  through joblib with ``n_jobs``), ``predict``, ``transform`` and ``score``.

Threads share the numba kernels; on numba's ``workqueue`` threading layer, which cannot
take parallel launches from several threads, ``predict_proba`` runs the images one by one
instead (``numba_threads_safe``).

Label maps that estimators return are uint8 when ``K <= 255`` and int32 otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .metrics import mean_iou
from .utils._parallel import numba_threads_safe, parallel_map
from .utils._param_validation import validate_parameter_constraints
from .utils._unaries import Unaries
from .utils._validation import (
    check_images,
    check_label_maps,
    check_matching_lengths,
)

__all__ = [
    "BaseRefiner",
    "BaseSegmenter",
    "InSampleScoresWarning",
    "RefinerMixin",
    "SegmenterMixin",
    "numba_threads_safe",
]


class InSampleScoresWarning(UserWarning):
    """A refiner's ``fit`` was given scores of the segmenter's own training images
    (``Unaries.in_sample``) and did not tune on them."""


def _in_sample(U):
    return bool(getattr(U, "in_sample", False))  # U: a Unaries, or images and scores


def labels_from_proba(proba, *, wide_dtype=np.int32):
    """Argmax over the class axis of ``(H, W, K)`` scores, as a compact integer map.

    Parameters
    ----------
    proba : (H, W, K) array_like
        Class scores, class axis last.
    wide_dtype : integer dtype, default=np.int32
        The map's type when K > 255 (uint8 holds up to 255 classes, leaving 255 free for
        ``ignore_index``). ``predict`` keeps int32; ``hybridseg segment`` asks for uint16,
        the widest type a PNG label map holds.

    Returns
    -------
    labels : (H, W) ndarray of uint8, or of ``wide_dtype`` when K > 255

    Raises
    ------
    ValueError
        ``wide_dtype`` cannot hold the labels 0 .. K - 1.
    """
    k = proba.shape[-1]
    if k <= 255:
        return np.argmax(proba, axis=-1).astype(np.uint8)
    wide = np.dtype(wide_dtype)
    if k - 1 > np.iinfo(wide).max:
        raise ValueError(f"the scores have {k} classes: a {wide.name} label map holds at "
                         f"most {np.iinfo(wide).max + 1}")
    return np.argmax(proba, axis=-1).astype(wide)


class _ParamsMixin:
    """``_validate_params()`` against the class's ``_parameter_constraints`` dict."""

    _parameter_constraints: dict = {}

    def _validate_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )

    def _check_images_labels(self, X, y, n_classes=None):
        """Validate ``X`` and ``y`` together: same count, matching sizes, valid labels."""
        images = check_images(X, name="X")
        if y is None:
            raise ValueError(
                f"{type(self).__name__}.fit requires y, the label maps of the images"
            )
        labels = check_label_maps(
            y,
            name="y",
            shapes=[im.shape[:2] for im in images],
            n_classes=n_classes,
            ignore_index=getattr(self, "ignore_index", 255),
        )
        return images, labels

    def _n_classes_from(self, labels):
        """K: the ``n_classes`` parameter, else one more than the largest label in ``y``
        (void pixels, ``ignore_index``, left out; None counts every pixel)."""
        if getattr(self, "n_classes", None) is not None:
            return int(self.n_classes)
        ign = getattr(self, "ignore_index", 255)
        return 1 + max(
            (int(m.max()) if ign is None else int(m[m != ign].max())
             for m in labels if ign is None or (m != ign).any()),
            default=0,
        )


class SegmenterMixin(_ParamsMixin):
    """What every segmenter shares: ``predict``, ``transform`` and ``score`` = mean IoU.

    A subclass implements ``fit(X, y)`` (setting ``n_classes_``) and ``predict_proba(X)``
    returning a list of ``(H, W, K)`` float32 probabilities.
    """

    def predict(self, X):
        """Label maps: the most probable class of each pixel.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images.

        Returns
        -------
        labels : list of (H, W) ndarray of uint8 (int32 when K > 255)
        """
        return [labels_from_proba(p) for p in self.predict_proba(X)]

    def transform(self, X):
        """The images and their class probabilities, as input for a refiner.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images.

        Returns
        -------
        U : Unaries
            ``kind="proba"``.
        """
        images = check_images(X)
        return Unaries(images, self.predict_proba(images), kind="proba")

    def fit_transform(self, X, y=None, **fit_params):
        """``fit(X, y)``, then ``transform(X)``: the training images with the fitted
        stage's scores, marked ``in_sample`` (a refiner does not tune on them).

        Parameters
        ----------
        X : sequence of images
        y : sequence of (H, W) label maps
        **fit_params
            Passed to ``fit``.

        Returns
        -------
        U : Unaries
        """
        U = self.fit(X, y, **fit_params).transform(X)
        U.in_sample = True
        return U

    def score(self, X, y):
        """Mean IoU of ``predict(X)`` against ``y`` (void pixels, ``ignore_index``, skipped).

        Parameters
        ----------
        X : sequence of images
        y : sequence of (H, W) label maps

        Returns
        -------
        miou : float
        """
        check_is_fitted(self)
        return mean_iou(
            y,
            self.predict(X),
            n_classes=self.n_classes_,
            ignore_index=getattr(self, "ignore_index", 255),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


class RefinerMixin(_ParamsMixin):
    """What every refiner shares, built on its ``refine(image, scores, *, kind)``.

    ``refine`` needs no fitting; ``fit(U, y)`` here only records ``n_classes_`` (a subclass
    that tunes parameters overrides it). ``predict_proba`` runs ``refine`` over the images
    through joblib, with the estimator's ``n_jobs`` if it has one, so that
    ``joblib.parallel_config(backend="dask")`` moves the work to a cluster.
    """

    def _tunes_on(self, U, y):
        """Whether ``fit`` may tune parameters on ``U`` and ``y``: not on scores a stage
        computed on its own training images (``U.in_sample``), which are overconfident;
        then it warns and says how to tune on held-out scores."""
        if y is None or not _in_sample(U):
            return y is not None
        name = type(self).__name__
        warnings.warn(
            f"{name}.fit was given scores that the segmenter computed on its own training "
            "images (fit_transform without cross-fitting): they are overconfident, and "
            f"parameters tuned on them trust the unaries too much. The {name} keeps its "
            "parameters as given, untuned. To tune it, fit it on held-out images "
            "(crf.fit(segmenter.transform(X_val), y_val)), or let the segmenter cross-fit "
            "(e.g. CNNSegmenter(cv=3)), so that Pipeline.fit passes it out-of-fold scores.",
            InSampleScoresWarning, stacklevel=3)
        return False

    def _check_unaries(self, U, name="U"):
        if not isinstance(U, Unaries):
            raise TypeError(
                f"{name} must be a hybridseg.Unaries (images with their class scores), got "
                f"{type(U).__name__}; build one with Unaries(images, scores, kind=...) or "
                "with a segmenter's transform(X)"
            )
        if len(U) == 0:
            raise ValueError(f"{name} is empty: expected at least one image")
        return U

    def fit(self, U, y=None):
        """Record the number of classes; the base refiner has nothing to learn.

        Parameters
        ----------
        U : Unaries
            Held-out images with class scores (not scores of images the unary stage was
            trained on).
        y : sequence of (H, W) label maps, optional
            Their labels; checked for consistency when given.

        Returns
        -------
        self
        """
        self._validate_params()
        U = self._check_unaries(U)
        if y is not None:
            check_label_maps(
                y,
                name="y",
                shapes=[im.shape[:2] for im in U.images],
                n_classes=U.n_classes,
                ignore_index=getattr(self, "ignore_index", 255),
            )
        self.n_classes_ = U.n_classes
        return self

    def _check_predict_unaries(self, U):
        check_is_fitted(self)
        U = self._check_unaries(U)
        if U.n_classes != self.n_classes_:
            raise ValueError(
                f"U has {U.n_classes} classes but {type(self).__name__} was fitted with "
                f"{self.n_classes_}"
            )
        return U

    def predict_proba(self, U):
        """Refined class probabilities of every image.

        Parameters
        ----------
        U : Unaries
            Images with their class scores.

        Returns
        -------
        proba : list of (H, W, K) ndarray of float32
        """
        U = self._check_predict_unaries(U)
        return parallel_map(lambda pair: self.refine(*pair, kind=U.kind), U,
                            getattr(self, "n_jobs", None),
                            numba_kernels=self._launches_parallel_kernels())

    def _launches_parallel_kernels(self):
        """Whether ``refine`` launches numba's parallel kernels (then ``predict_proba``
        lets the first image run alone: see ``parallel_map``)."""
        return True

    def predict(self, U):
        """Refined label maps.

        Parameters
        ----------
        U : Unaries

        Returns
        -------
        labels : list of (H, W) ndarray of uint8 (int32 when K > 255)
        """
        return [labels_from_proba(p) for p in self.predict_proba(U)]

    def transform(self, U):
        """The images with refined probabilities, so that refiners can be chained.

        Returns
        -------
        U_refined : Unaries
            ``kind="proba"``.
        """
        proba = self.predict_proba(U)
        return Unaries._from_checked(U.images, proba, "proba", _in_sample(U))

    def score(self, U, y):
        """Mean IoU of ``predict(U)`` against ``y``."""
        check_is_fitted(self)
        check_matching_lengths(U=U, y=y)
        return mean_iou(
            y,
            self.predict(U),
            n_classes=self.n_classes_,
            ignore_index=getattr(self, "ignore_index", 255),
        )

    def refine(self, image, scores, *, kind="proba"):  # pragma: no cover - abstract
        raise NotImplementedError


class BaseSegmenter(SegmenterMixin, TransformerMixin, BaseEstimator):
    """Base class for segmenters: ``fit(X, y)``, ``predict_proba(X)`` and the rest."""


class BaseRefiner(RefinerMixin, TransformerMixin, BaseEstimator):
    """Base class for refiners: ``refine(image, scores, *, kind)`` and the rest."""
