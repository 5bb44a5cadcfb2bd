"""The ``Unaries`` container: what flows from a unary stage to a refiner."""

from __future__ import annotations

import numbers

import numpy as np

from ._scores import to_logits, to_proba
from ._validation import check_images, check_kind, check_scores

__all__ = ["Unaries"]


class Unaries:
    """Images with their per-pixel class scores, as passed from a unary stage to a refiner.

    A segmenter's ``transform(X)`` returns one; a refiner's ``fit``, ``predict`` and
    ``predict_proba`` take one. It behaves like a sequence of ``(image, scores)`` pairs and
    can be split like an array, so scikit-learn's cross-validation and ``GridSearchCV``
    handle it as they handle ``X``.

    Parameters
    ----------
    images : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
        The images the scores belong to (a refiner's pairwise terms read them). Sizes may
        differ between images.
    scores : sequence of (H, W, K) array_like of float
        Per-pixel class scores, class axis last, one array per image, all with the same K.
    kind : {"proba", "logits"}, default="proba"
        Whether ``scores`` are probabilities (non-negative, summing to one over the class
        axis) or logits (any finite values).
    in_sample : bool, default=False
        True when the scores come from a stage fitted on these very images (a segmenter's
        ``fit_transform`` without cross-fitting sets it): they are overconfident, so a
        refiner's ``fit`` does not tune its parameters on them (it warns, and says how to
        tune on held-out scores).

    Attributes
    ----------
    images : list of ndarray
        The images, as given (not copied).
    scores : list of (H, W, K) ndarray of float32
        The scores, C-contiguous float32 (copied only where the input was not).
    kind : str
        ``"proba"`` or ``"logits"``.
    in_sample : bool
        As given.
    n_classes : int
        K.
    shape : tuple of int
        ``(n_images,)``; lets scikit-learn's splitters index the container as a whole.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg import Unaries
    >>> images = [np.zeros((4, 5, 3), np.uint8), np.zeros((6, 2), np.uint8)]
    >>> scores = [np.full((4, 5, 2), 0.5), np.full((6, 2, 2), 0.5)]
    >>> U = Unaries(images, scores, kind="proba")
    >>> len(U), U.n_classes, U[1:].shape
    (2, 2, (1,))
    >>> image, s = U[0]
    >>> s.shape, s.dtype
    ((4, 5, 2), dtype('float32'))
    """

    __slots__ = ("images", "in_sample", "kind", "scores")

    def __init__(self, images, scores, *, kind="proba", in_sample=False):
        check_kind(kind)
        images = check_images(images, name="images")
        if scores is None or isinstance(scores, (str, bytes)):
            raise TypeError("scores must be a sequence of (H, W, K) arrays")
        if isinstance(scores, np.ndarray) and scores.ndim != 4:
            raise ValueError(
                "scores must be a sequence of (H, W, K) arrays or an (N, H, W, K) array, got "
                f"an array of shape {scores.shape}"
            )
        scores = list(scores)
        if len(scores) != len(images):
            raise ValueError(
                f"images and scores have different lengths: {len(images)} images, "
                f"{len(scores)} score arrays"
            )
        checked = []
        n_classes = None
        for i, (im, s) in enumerate(zip(images, scores)):
            s = check_scores(
                s, kind=kind, name=f"scores[{i}]", spatial_shape=im.shape[:2],
                n_classes=n_classes,
            )
            n_classes = s.shape[2]
            checked.append(s)
        self.images = images
        self.scores = checked
        self.kind = kind
        self.in_sample = bool(in_sample)

    def __setstate__(self, state):
        """Unpickling: a Unaries pickled before ``in_sample`` existed gets False."""
        slots = state[1] if isinstance(state, tuple) else state
        self.in_sample = False
        for name, value in (slots or {}).items():
            setattr(self, name, value)

    @classmethod
    def _from_checked(cls, images, scores, kind, in_sample=False):
        # Internal: build from parts that are already validated (slicing, conversion).
        obj = cls.__new__(cls)
        obj.images = list(images)
        obj.scores = list(scores)
        obj.kind = kind
        obj.in_sample = in_sample
        return obj

    @property
    def n_classes(self):
        return int(self.scores[0].shape[2]) if self.scores else 0

    @property
    def shape(self):
        return (len(self.images),)

    def __len__(self):
        return len(self.images)

    def __iter__(self):
        return iter(zip(self.images, self.scores))

    def __getitem__(self, key):
        """``U[i]`` gives the pair ``(image, scores)``; a slice, an index array or a boolean
        mask gives a ``Unaries`` of those images."""
        if isinstance(key, tuple):
            # scikit-learn's array indexing passes (key, Ellipsis).
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            else:
                raise IndexError("Unaries is one-dimensional: index it with one key")
        if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
            return self.images[key], self.scores[key]
        if isinstance(key, slice):
            return Unaries._from_checked(self.images[key], self.scores[key], self.kind,
                                         self.in_sample)
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(
                    f"boolean index of shape {idx.shape} does not match {len(self)} images"
                )
            idx = np.flatnonzero(idx)
        elif idx.dtype.kind not in "iu" and idx.size > 0:
            raise IndexError(f"Unaries indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.intp).ravel()
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for Unaries of length {n}")
        return Unaries._from_checked(
            [self.images[i] for i in idx], [self.scores[i] for i in idx], self.kind,
            self.in_sample,
        )

    def to_proba(self):
        """Return a ``Unaries`` whose scores are probabilities (softmax of logits)."""
        if self.kind == "proba":
            return self
        return Unaries._from_checked(
            self.images, [to_proba(s, "logits") for s in self.scores], "proba",
            self.in_sample,
        )

    def to_logits(self):
        """Return a ``Unaries`` whose scores are logits (``log p``, zeros floored at 1e-30)."""
        if self.kind == "logits":
            return self
        return Unaries._from_checked(
            self.images, [to_logits(s, "proba") for s in self.scores], "logits",
            self.in_sample,
        )

    def __repr__(self):
        sizes = {im.shape[:2] for im in self.images}
        size = (
            "x".join(map(str, next(iter(sizes)))) if len(sizes) == 1 else "mixed sizes"
        )
        return (
            f"Unaries({len(self)} images, {size}, K={self.n_classes}, kind={self.kind!r})"
        )
