"""PixelClassifier: any scikit-learn classifier on hand-made per-pixel features.

``fit`` computes the features of every training image (``pixel_features``), draws a
class-balanced sample of the labelled pixels, and fits the classifier on it;
``predict_proba`` classifies every pixel. ``fit_transform`` gives out-of-fold class
probabilities (cross fitting over images, as scikit-learn's ``TargetEncoder`` does over
rows), so that a refiner after it in a ``Pipeline`` is tuned on honest unaries.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..base import BaseSegmenter
from ..utils._parallel import parallel_map
from ..utils._param_validation import Interval, StrOptions
from ..utils._unaries import Unaries
from ..utils._validation import check_images, unit_range, warn_outside_range
from ._features import _CONSTRAINTS as _FEATURE_CONSTRAINTS
from ._features import _n_channels, _pixel_features, check_sigmas

__all__ = ["PixelClassifier"]

# Probability mass added to every class before renormalising, so that no pixel gets an
# exact zero: a refiner's unary is -log p, and a zero (floored at 1e-30 by the CRFs, a cost
# of 69) would make the classifier's mistakes impossible for the CRF to undo. The argmax
# is unchanged; the largest unary cost becomes about -log(1e-4) = 9.2.
PROBA_FLOOR = 1e-4


def _default_classifier():
    from sklearn.ensemble import RandomForestClassifier

    # Measured on CamVid (92 train / 47 test images, 100k balanced pixels): random forests
    # beat extra trees by 1-3 points of mean IoU at a similar prediction time, and drawing
    # half the sample per tree (max_samples=0.5) halves the fit for ~0.2 point.
    return RandomForestClassifier(
        n_estimators=50, max_depth=20, min_samples_leaf=5, max_samples=0.5,
        max_features="sqrt",
    )


def _as_rgb(image):
    """A gray image as three equal channels (the features of a colour model apply)."""
    gray = image.reshape(image.shape[:2])
    return np.repeat(gray[:, :, None], 3, axis=2)


def _balanced_quotas(counts, total):
    """How many pixels to draw of each class: as equal as the class sizes allow.

    Classes with fewer pixels than an equal share give all theirs, and the rest of the
    budget is shared among the larger classes (water filling).
    """
    quotas = np.zeros_like(counts)
    present = [c for c in np.argsort(counts, kind="stable") if counts[c] > 0]
    left = total
    for i, c in enumerate(present):
        share = left // (len(present) - i)
        quotas[c] = min(counts[c], share)
        left -= quotas[c]
    return quotas


def sample_pixels(labels, n_classes, *, max_samples, balanced, ignore_index, rng):
    """Choose the training pixels: flat indices into each label map.

    Parameters
    ----------
    labels : list of (H, W) ndarray of int
        Validated label maps.
    n_classes : int
        K; labels other than ``ignore_index`` lie in ``[0, K)``.
    max_samples : int or None
        How many pixels in total (all labelled pixels when None or when there are fewer).
    balanced : bool
        Draw about equally many pixels of each class present (else uniformly among the
        labelled pixels).
    ignore_index : int or None
        Void label, never drawn.
    rng : numpy.random.Generator

    Returns
    -------
    picks : list of (n_i,) ndarray of intp
        Sorted flat pixel indices of each image.
    """
    flats = [np.asarray(m).ravel() for m in labels]
    valid = [np.ones(f.shape, bool) if ignore_index is None else f != ignore_index
             for f in flats]
    if balanced:
        # Groups are the classes; counts[i, c]: pixels of class c in image i.
        counts = np.array(
            [np.bincount(f[v].astype(np.intp), minlength=n_classes)[:n_classes]
             for f, v in zip(flats, valid)]
        ).reshape(len(flats), n_classes)
    else:
        counts = np.array([[int(v.sum())] for v in valid])
    totals = counts.sum(axis=0)
    n_valid = int(totals.sum())
    if n_valid == 0:
        raise ValueError("y holds no labelled pixel: every pixel is ignore_index")
    if max_samples is None or max_samples >= n_valid:
        quotas = totals
    elif balanced:
        quotas = _balanced_quotas(totals, max_samples)
    else:
        quotas = np.array([max_samples])
    # Global ranks drawn per group, then split into per-image ranks.
    local = [[None] * counts.shape[1] for _ in flats]
    for g in range(counts.shape[1]):
        if quotas[g] == 0:
            continue
        if quotas[g] >= totals[g]:
            ranks = np.arange(totals[g])
        else:
            ranks = np.sort(rng.choice(totals[g], size=int(quotas[g]), replace=False))
        bounds = np.concatenate([[0], np.cumsum(counts[:, g])])
        cut = np.searchsorted(ranks, bounds)
        for i in range(len(flats)):
            if cut[i + 1] > cut[i]:
                local[i][g] = ranks[cut[i]:cut[i + 1]] - bounds[i]
    picks = []
    for i, (f, v) in enumerate(zip(flats, valid)):
        chosen = []
        for g, r in enumerate(local[i]):
            if r is None:
                continue
            where = np.flatnonzero(v & (f == g)) if balanced else np.flatnonzero(v)
            chosen.append(where[r])
        picks.append(np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.intp))
    return picks


class PixelClassifier(BaseSegmenter):
    """Per-pixel classification with any scikit-learn classifier on hand-made features.

    Each pixel is described by ``pixel_features``
    (multiscale intensity, edges and Hessian texture of the luminance, colour, relative
    position, optionally SLIC superpixel statistics); a classifier is fitted on a
    class-balanced sample of the labelled pixels and its ``predict_proba`` gives every
    pixel's class probabilities.

    Parameters
    ----------
    classifier : scikit-learn classifier, optional
        Any estimator with ``fit`` and ``predict_proba``. It is cloned in ``fit`` and never
        modified; where it has an ``n_jobs`` or ``random_state`` parameter left at None,
        the clone gets this estimator's. By default a
        ``RandomForestClassifier(n_estimators=50, max_depth=20, min_samples_leaf=5,
        max_samples=0.5, max_features="sqrt")``: about 0.3 s (features included) to
        classify a 360x480 colour image on two cores.
    sigmas : float or sequence of float, default=(1, 2, 4, 8, 16)
        Scales of the multiscale features, in pixels.
    intensity, edges, texture : bool, default=True
        Multiscale feature families.
    color : {"lab", "rgb"} or None, default="lab"
        Colour features of 3-channel images.
    position : bool, default=True
        Relative row and column of each pixel.
    superpixels : int, optional
        Approximate number of SLIC superpixels whose statistics each pixel gets (slower:
        about 0.1 s more per 360x480 image at 400).
    max_samples : int or None, default=100_000
        Pixels drawn for training, in total over all images (not per image). None: every
        labelled pixel.
    class_weight : {"balanced"} or None, default="balanced"
        ``"balanced"``: draw about equally many pixels of each class present (a class
        with fewer pixels than its share gives all of them and the others share the
        rest), so rare classes are not drowned by road and sky. None: draw uniformly among
        the labelled pixels. Void pixels are never drawn.
    cv : int or cross-validation splitter, default=3
        Folds over images for the out-of-fold probabilities of ``fit_transform``. An int
        gives consecutive folds (``KFold`` without shuffling, so frames of one video
        sequence tend to stay together); with fewer images than ``cv``, one fold per
        image. A splitter must put every image in exactly one test fold.
    n_classes : int, optional
        K. By default one more than the largest label in ``y``.
    ignore_index : int or None, default=255
        Void label.
    n_jobs : int, optional
        Images processed in parallel (joblib threads) for features and prediction; also
        given to the classifier where it has an ``n_jobs`` parameter left at None (the
        fitted classifier keeps the value it had at fit time).
    random_state : int, RandomState instance or None, default=None
        Seeds the pixel sampling and, where it has a ``random_state`` left at None, the
        classifier.

    Attributes
    ----------
    classifier_ : estimator
        The fitted clone of ``classifier``.
    n_classes_ : int
        K.
    classes_ : (K,) ndarray of intp
        ``0 .. K-1``: the columns of ``predict_proba``.
    n_features_ : int
        Number of features per pixel.
    feature_names_ : (n_features_,) ndarray of object
        Their names, as ``pixel_features`` gives them.
    n_channels_ : int
        Channels of the training images (1 for gray). A model fitted on colour images
        also takes gray ones (as three equal channels); other mismatches are refused.

    Notes
    -----
    Images may have different sizes. Gray and RGB images may be mixed in one call: gray
    images are then read as RGB images with three equal channels (zero Lab
    chromaticity). Other mixtures of channel counts are refused.

    Probabilities are never exactly zero: ``PROBA_FLOOR`` (1e-4) is added to every class
    and the result renormalised, which keeps the argmax and bounds a CRF's unary cost
    ``-log p`` at about 9.2. Classes absent from the training sample get only that floor.

    ``fit_transform(X, y)`` returns out-of-fold probabilities: the images are split into
    ``cv`` folds, and each fold is predicted by a clone fitted on the other folds; the
    estimator is then fitted on all images, exactly as ``fit`` would with the same
    ``random_state``. It needs at least two images (a ``ValueError`` otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from hybridseg.classical import PixelClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = [np.zeros((12, 16), np.uint8) for _ in range(2)]
    >>> for lab in y:
    ...     lab[:, 8:] = 1
    >>> X = [(lab * 200 + rng.integers(0, 40, lab.shape)).astype(np.uint8) for lab in y]
    >>> seg = PixelClassifier(RandomForestClassifier(n_estimators=5), sigmas=(1,),
    ...                       random_state=0).fit(X, y)
    >>> seg.n_features_, seg.predict_proba(X)[0].shape
    (6, (12, 16, 2))
    >>> bool((seg.predict(X)[0] == y[0]).mean() > 0.9)
    True
    >>> U = seg.fit_transform(X, y)
    >>> len(U), U.kind
    (2, 'proba')
    """

    _parameter_constraints = {
        "classifier": "no_validation",
        **_FEATURE_CONSTRAINTS,
        "max_samples": [None, Interval(numbers.Integral, 1, None)],
        "class_weight": [None, StrOptions({"balanced"})],
        "cv": "no_validation",
        "n_classes": [None, Interval(numbers.Integral, 1, None)],
        "ignore_index": [None, numbers.Integral],
        "n_jobs": [None, numbers.Integral],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        classifier=None,
        *,
        sigmas=(1, 2, 4, 8, 16),
        intensity=True,
        edges=True,
        texture=True,
        color="lab",
        position=True,
        superpixels=None,
        max_samples=100_000,
        class_weight="balanced",
        cv=3,
        n_classes=None,
        ignore_index=255,
        n_jobs=None,
        random_state=None,
    ):
        self.classifier = classifier
        self.sigmas = sigmas
        self.intensity = intensity
        self.edges = edges
        self.texture = texture
        self.color = color
        self.position = position
        self.superpixels = superpixels
        self.max_samples = max_samples
        self.class_weight = class_weight
        self.cv = cv
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ checking
    def _check_params(self):
        self._validate_params()
        sigmas = check_sigmas(self.sigmas)
        if not (self.intensity or self.edges or self.texture or self.position
                or self.superpixels or self.color is not None):
            raise ValueError(
                f"{type(self).__name__} has no features: intensity, edges, texture and "
                "position are all False, and color and superpixels are None"
            )
        base = _default_classifier() if self.classifier is None else self.classifier
        if not (hasattr(base, "fit") and hasattr(base, "get_params")):
            raise TypeError(
                "classifier must be a scikit-learn classifier (with fit and "
                f"predict_proba), got {base!r}"
            )
        if not hasattr(base, "predict_proba"):
            raise TypeError(
                f"classifier must have predict_proba to give class probabilities; "
                f"{base!r} has none (for SVC, pass probability=True)"
            )
        return sigmas

    def _check_fit_input(self, X, y):
        """Validated images (gray promoted where mixed with RGB), labels, K, channels."""
        images, labels = self._check_images_labels(X, y, n_classes=self.n_classes)
        channels = [_n_channels(im) for im in images]
        kinds = set(channels)
        if kinds == {1, 3}:
            images = [_as_rgb(im) if c == 1 else im for im, c in zip(images, channels)]
            n_channels = 3
        elif len(kinds) > 1:
            i = next(i for i, c in enumerate(channels) if c != channels[0])
            raise ValueError(
                f"X[{i}] has {channels[i]} channel(s) but X[0] has {channels[0]}: images "
                "in one call must all have the same number of channels (gray and RGB may "
                "be mixed)"
            )
        else:
            n_channels = channels[0]
        if n_channels != 3 and not (self.intensity or self.edges or self.texture
                                    or self.position or self.superpixels):
            raise ValueError(
                f"{type(self).__name__} has no features for images with {n_channels} "
                "channel(s): color applies to RGB images only, and intensity, edges, "
                "texture and position are all False and superpixels is None"
            )
        return images, labels, self._n_classes_from(labels), n_channels

    def _splits(self, n_images):
        cv = self.cv
        if hasattr(cv, "split"):
            splits = [(np.asarray(tr), np.asarray(te))
                      for tr, te in cv.split(np.zeros((n_images, 1)))]
            seen = np.concatenate([te for _, te in splits]) if splits else np.zeros(0, int)
            if np.sort(seen).tolist() != list(range(n_images)):
                raise ValueError(
                    "cv must put every image in exactly one test fold (a partition of the "
                    "images, like KFold)"
                )
            return splits
        if isinstance(cv, (bool, np.bool_)) or not isinstance(cv, numbers.Integral) or cv < 2:
            raise ValueError(
                f"The 'cv' parameter of {type(self).__name__} must be an int >= 2 or a "
                f"cross-validation splitter. Got {cv!r} instead."
            )
        if n_images < 2:
            raise ValueError(
                f"{type(self).__name__}.fit_transform needs at least 2 images for "
                f"out-of-fold predictions, got {n_images}; use fit(X, y).transform(X) "
                "for in-sample probabilities"
            )
        from sklearn.model_selection import KFold

        return list(KFold(n_splits=min(int(cv), n_images)).split(np.zeros((n_images, 1))))

    # ------------------------------------------------------------------ work
    def _features(self, image, sigmas):
        return _pixel_features(
            image, sigmas, self.intensity, self.edges, self.texture, self.color,
            self.position, self.superpixels,
        )

    def _fit_model(self, images, labels, k, sigmas, seed):
        """A classifier fitted on the sampled pixels of ``images``; self is not touched."""
        sampling_seed, clf_seed = seed
        picks = sample_pixels(
            labels, k, max_samples=self.max_samples,
            balanced=self.class_weight == "balanced", ignore_index=self.ignore_index,
            rng=np.random.default_rng(sampling_seed),
        )

        def rows(item):
            image, pick = item
            if pick.size == 0:
                return None
            f = self._features(image, sigmas)
            return f.reshape(-1, f.shape[-1])[pick]

        parts = parallel_map(rows, zip(images, picks), self.n_jobs)
        Xs = np.concatenate([p for p in parts if p is not None])
        ys = np.concatenate([m.ravel()[p] for m, p in zip(labels, picks)]).astype(np.intp)
        clf = clone(_default_classifier() if self.classifier is None else self.classifier)
        params = clf.get_params(deep=False)
        updates = {}
        if "n_jobs" in params and params["n_jobs"] is None and self.n_jobs is not None:
            updates["n_jobs"] = self.n_jobs
        if "random_state" in params and params["random_state"] is None:
            updates["random_state"] = int(clf_seed)
        clf.set_params(**updates)
        clf.fit(Xs, ys)
        if not hasattr(clf, "predict_proba"):
            raise TypeError(
                f"classifier must have predict_proba to give class probabilities; the "
                f"fitted {type(clf).__name__} has none"
            )
        return clf

    def _proba(self, clf, image, k, sigmas):
        f = self._features(image, sigmas)
        h, w, nf = f.shape
        p = clf.predict_proba(f.reshape(-1, nf))
        out = np.zeros((h * w, k), np.float32)
        out[:, np.asarray(clf.classes_).astype(np.intp)] = p
        out += np.float32(PROBA_FLOOR)
        out /= np.float32(1 + k * PROBA_FLOOR)
        return out.reshape(h, w, k)

    def _seeds(self, n_models):
        rng = check_random_state(self.random_state)
        draws = rng.randint(np.iinfo(np.int32).max, size=(n_models, 2))
        return [tuple(int(v) for v in row) for row in draws]

    def _set_fitted(self, clf, k, sigmas, n_channels, images):
        _, names = _pixel_features(
            images[0][:1, :1], sigmas, self.intensity, self.edges, self.texture,
            self.color, self.position, self.superpixels, return_names=True,
        )
        # the range the training images are read in (the one rule), for the range warning
        ranges = [unit_range(im) for im in images]
        self.input_range_ = (min(r[0] for r in ranges), max(r[1] for r in ranges))
        self.classifier_ = clf
        self.n_classes_ = k
        self.classes_ = np.arange(k, dtype=np.intp)
        self.n_channels_ = n_channels
        self.n_features_ = len(names)
        self.feature_names_ = np.asarray(names, dtype=object)

    # ------------------------------------------------------------------ public
    def fit(self, X, y):
        """Fit the classifier on a (class-balanced) sample of the labelled pixels.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Training images; sizes may differ.
        y : sequence of (H, W) array_like of int, or (N, H, W) ndarray
            Label maps; ``ignore_index`` marks void pixels.

        Returns
        -------
        self
        """
        sigmas = self._check_params()
        images, labels, k, n_channels = self._check_fit_input(X, y)
        (seed,) = self._seeds(1)
        clf = self._fit_model(images, labels, k, sigmas, seed)
        self._set_fitted(clf, k, sigmas, n_channels, images)
        return self

    def fit_transform(self, X, y):
        """Out-of-fold class probabilities of the training images, then fit on them all.

        The images are split into ``cv`` folds (one per image when there are fewer); each
        fold's probabilities come from a clone fitted on the other folds only, so a
        refiner tuned on them sees unaries as they are on new images. The estimator ends
        fitted on all images, as after ``fit(X, y)`` with the same ``random_state``.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            At least two images.
        y : sequence of (H, W) array_like of int, or (N, H, W) ndarray
            Label maps.

        Returns
        -------
        U : Unaries
            The images with their out-of-fold ``(H, W, K)`` probabilities,
            ``kind="proba"``.
        """
        U, (images, labels, k, sigmas, n_channels, seed) = self._cross_fit(X, y)
        clf = self._fit_model(images, labels, k, sigmas, seed)
        self._set_fitted(clf, k, sigmas, n_channels, images)
        return U

    def _cross_fit(self, X, y):
        """``fit_transform``'s out-of-fold probabilities without its final fit (self is
        not touched): the same folds and seeds, so ``_cross_fit(X, y)`` then
        ``fit(X, y)`` is ``fit_transform(X, y)``. Also returns what the final fit needs:
        the checked images, labels, K, sigmas, channel count and seed."""
        sigmas = self._check_params()
        originals = check_images(X, name="X")
        images, labels, k, n_channels = self._check_fit_input(originals, y)
        splits = self._splits(len(images))
        seeds = self._seeds(1 + len(splits))
        oof = [None] * len(images)
        for (train, test), seed in zip(splits, seeds[1:]):
            clf = self._fit_model(
                [images[i] for i in train], [labels[i] for i in train], k, sigmas, seed
            )
            probas = parallel_map(
                lambda im, c=clf: self._proba(c, im, k, sigmas),
                [images[i] for i in test], self.n_jobs,
            )
            for i, p in zip(test, probas):
                oof[i] = p
        U = Unaries._from_checked(originals, oof, "proba")
        return U, (images, labels, k, sigmas, n_channels, seeds[0])

    def predict_proba(self, X):
        """Class probabilities of every pixel.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images with the training images' number of channels (gray images are also
            taken by a model fitted on RGB ones).

        Returns
        -------
        proba : list of (H, W, K) ndarray of float32
            Never exactly zero (see Notes).
        """
        check_is_fitted(self)
        images = check_images(X)
        if hasattr(self, "input_range_"):  # fitted before it was recorded: no check
            warn_outside_range(images, self.input_range_, who=type(self).__name__)
        prepared = []
        for i, im in enumerate(images):
            c = _n_channels(im)
            if c == 1 and self.n_channels_ == 3:
                im = _as_rgb(im)
            elif c != self.n_channels_:
                raise ValueError(
                    f"X[{i}] has {c} channel(s) but {type(self).__name__} was fitted on "
                    f"images with {self.n_channels_}"
                )
            prepared.append(im)
        sigmas = check_sigmas(self.sigmas)
        return parallel_map(
            lambda im: self._proba(self.classifier_, im, self.n_classes_, sigmas),
            prepared, self.n_jobs,
        )
