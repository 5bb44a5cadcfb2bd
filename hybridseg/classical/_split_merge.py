"""Split-and-merge on gray levels, and rules (region statistics -> class) learned from labels.

``SplitMerge.segment`` is the classical algorithm (Horowitz & Pavlidis, 1974): a quadtree
split into homogeneous blocks, then adjacent regions merged while their union stays
homogeneous. The merge runs on the region adjacency graph of the blocks (found along the
blocks' right and bottom borders, so its cost follows the number of blocks, not of pixels)
with a union-find forest that keeps each region's count, sum, sum of squares, minimum and
maximum, all in numba. ``fit`` then learns what a person writing a gray-level segmentation
by hand would write as rules: a shallow decision tree from region statistics (mean, spread,
size, position) to classes, printed by ``rules_``.
"""

from __future__ import annotations

import numbers

import numba
import numpy as np
from numba import prange
from sklearn.utils.validation import check_is_fitted

from ..base import BaseSegmenter
from ..utils._parallel import serialized_launches
from ..utils._param_validation import Interval, StrOptions
from ..utils._validation import check_images
from ._quadtree import _check_sizes, check_threshold, split_blocks, to_gray

__all__ = ["SplitMerge"]


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _paint_sums(gray, rows, cols, hs, ws, ids, sums, sqs):
    """Write block ids over their pixels; sum and sum of squares of each block."""
    for b in prange(rows.shape[0]):
        s = 0.0
        q = 0.0
        for r in range(rows[b], rows[b] + hs[b]):
            for c in range(cols[b], cols[b] + ws[b]):
                ids[r, c] = b
                v = float(gray[r, c])
                s += v
                q += v * v
        sums[b] = s
        sqs[b] = q


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _border_edges(ids, rows, cols, hs, ws, offsets, out):
    """Neighbour pairs along each block's right and bottom border (-1 where unused).

    Block ``b`` writes into ``out[offsets[b]:offsets[b + 1]]``, one slot per border pixel;
    a neighbour repeated along the border is written once per run.
    """
    h, w = ids.shape
    for b in prange(rows.shape[0]):
        k = offsets[b]
        end = offsets[b + 1]
        for i in range(k, end):
            out[i, 0] = -1
        c = cols[b] + ws[b]
        if c < w:  # down the column just right of the block
            k = _border_run(ids, b, rows[b], c, 1, 0, hs[b], out, k)
        r = rows[b] + hs[b]
        if r < h:  # along the row just below it
            k = _border_run(ids, b, r, cols[b], 0, 1, ws[b], out, k)


@numba.njit(cache=True, nogil=True, inline="always")
def _border_run(ids, b, r0, c0, dr, dc, n, out, k):
    """Write ``(b, neighbour)`` for the ``n`` pixels from ``(r0, c0)`` in steps ``(dr, dc)``,
    once per run of one neighbour; return the next free slot."""
    last = -1
    for i in range(n):
        nb = ids[r0 + i * dr, c0 + i * dc]
        if nb != last:
            out[k, 0] = b
            out[k, 1] = nb
            k += 1
            last = nb
    return k


@numba.njit(cache=True, nogil=True)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@numba.njit(cache=True, nogil=True)
def _merge(edges, order, parent, cnt, s, q, lo, hi, threshold, use_std, min_region_size):
    """Union-find merges over the edges in ``order``; returns the number of regions lost.

    Pass 1 merges two regions when their union is homogeneous: range ``hi - lo`` (or the
    standard deviation, ``use_std``) at most ``threshold``. The range only grows as
    regions grow, so one sweep leaves no mergeable pair; for the standard deviation,
    which can fall, sweeps repeat until none merges. Pass 2 (``min_region_size > 1``)
    merges every region smaller than ``min_region_size`` into the neighbour met first in
    the same order (the most similar one by mean), whatever the predicate.
    """
    merged = 0
    while True:
        before = merged
        for e in order:
            a = _find(parent, edges[e, 0])
            b = _find(parent, edges[e, 1])
            if a == b:
                continue
            n = cnt[a] + cnt[b]
            if use_std:
                m = (s[a] + s[b]) / n
                var = (q[a] + q[b]) / n - m * m
                ok = var <= threshold * threshold
            else:
                ok = max(hi[a], hi[b]) - min(lo[a], lo[b]) <= threshold
            if ok:
                _union(parent, cnt, s, q, lo, hi, a, b)
                merged += 1
        if not use_std or merged == before:
            break
    if min_region_size > 1:
        while True:
            before = merged
            for e in order:
                a = _find(parent, edges[e, 0])
                b = _find(parent, edges[e, 1])
                if a != b and (cnt[a] < min_region_size or cnt[b] < min_region_size):
                    _union(parent, cnt, s, q, lo, hi, a, b)
                    merged += 1
            if merged == before:
                break
    return merged


@numba.njit(cache=True, nogil=True)
def _union(parent, cnt, s, q, lo, hi, a, b):
    if cnt[a] < cnt[b]:
        a, b = b, a
    parent[b] = a
    cnt[a] += cnt[b]
    s[a] += s[b]
    q[a] += q[b]
    lo[a] = min(lo[a], lo[b])
    hi[a] = max(hi[a], hi[b])


@numba.njit(cache=True, nogil=True)
def _compact(parent, first_order):
    """Region id of every block: roots numbered in the order their first block comes."""
    n = parent.shape[0]
    root_id = np.full(n, -1, np.int32)
    lut = np.empty(n, np.int32)
    k = 0
    for b in first_order:
        r = _find(parent, b)
        if root_id[r] < 0:
            root_id[r] = k
            k += 1
    for b in range(n):
        lut[b] = root_id[_find(parent, b)]
    return lut, k


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _relabel(ids, lut):
    h, w = ids.shape
    for r in prange(h):
        for c in range(w):
            ids[r, c] = lut[ids[r, c]]


def split_merge(gray, threshold, merge_threshold, min_size, max_size, predicate,
                min_region_size):
    """Region map of a checked gray image; ids ``0 .. R - 1`` in raster order of first pixel.

    Returns the region map and the number of regions.
    """
    rows, cols, hs, ws, lo, hi = split_blocks(gray, threshold, min_size, max_size)
    n = rows.shape[0]
    ids = np.empty(gray.shape, np.int32)
    sums = np.empty(n, np.float64)
    sqs = np.empty(n, np.float64)
    _paint_sums(gray, rows, cols, hs, ws, ids, sums, sqs)
    cnt = hs * ws
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(hs + ws, out=offsets[1:])
    slots = np.empty((offsets[-1], 2), np.int32)
    _border_edges(ids, rows, cols, hs, ws, offsets, slots)
    edges = slots[slots[:, 0] >= 0]
    means = sums / cnt
    order = np.argsort(np.abs(means[edges[:, 0]] - means[edges[:, 1]]), kind="stable")
    parent = np.arange(n, dtype=np.int64)
    _merge(edges, order, parent, cnt.astype(np.float64), sums, sqs, lo, hi,
           float(merge_threshold), predicate == "std", int(min_region_size))
    first = np.argsort(rows * gray.shape[1] + cols, kind="stable")
    lut, n_regions = _compact(parent, first)
    _relabel(ids, lut)
    return ids, n_regions


_COLOUR_NAMES = ("red", "green", "blue")


def _feature_names(n_channels):
    names = ["mean", "std", "min", "max", "area", "row", "col"]
    if n_channels in (3, 4):
        names += [f"mean_{c}" for c in _COLOUR_NAMES]
    elif n_channels > 1:
        names += [f"mean_c{i}" for i in range(n_channels)]
    return names


def region_statistics(image, gray, regions, n_regions):
    """Per-region features: gray mean, std, min, max; area fraction; centroid; colour means.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
        The original image (for colour means).
    gray : (H, W) ndarray
        Its gray levels, in the image's units.
    regions : (H, W) ndarray of int32
        Region ids ``0 .. n_regions - 1``.
    n_regions : int

    Returns
    -------
    stats : (n_regions, F) ndarray of float64
        Columns named by ``_feature_names``; ``area`` is the fraction of the image's pixels,
        ``row`` and ``col`` the centroid as a fraction of the height and width.
    """
    h, w = regions.shape
    if image.ndim == 3 and image.shape[2] > 1:
        nc = 3 if image.shape[2] == 4 else image.shape[2]
        colour = np.ascontiguousarray(image[:, :, :nc])
    else:
        colour = np.zeros((h, w, 0), np.uint8)
    acc = np.zeros((n_regions, 7 + colour.shape[2]), np.float64)
    _region_sums(gray, regions, colour, acc)
    cnt = acc[:, 0]
    mean = acc[:, 1] / cnt
    std = np.sqrt(np.maximum(acc[:, 2] / cnt - mean**2, 0.0))
    stats = np.empty((n_regions, 7 + colour.shape[2]), np.float64)
    stats[:, 0] = mean
    stats[:, 1] = std
    stats[:, 2:4] = acc[:, 3:5]
    stats[:, 4] = cnt / (h * w)
    stats[:, 5] = acc[:, 5] / cnt / max(h - 1, 1)
    stats[:, 6] = acc[:, 6] / cnt / max(w - 1, 1)
    stats[:, 7:] = acc[:, 7:] / cnt[:, None]
    return stats


@numba.njit(cache=True, nogil=True)
def _region_sums(gray, regions, colour, acc):
    """Per region: count, sum, sum of squares, min, max, row sum, column sum, channel sums."""
    h, w = regions.shape
    nc = colour.shape[2]
    acc[:, 3] = np.inf
    acc[:, 4] = -np.inf
    for r in range(h):
        for c in range(w):
            k = regions[r, c]
            v = float(gray[r, c])
            acc[k, 0] += 1.0
            acc[k, 1] += v
            acc[k, 2] += v * v
            if v < acc[k, 3]:
                acc[k, 3] = v
            if v > acc[k, 4]:
                acc[k, 4] = v
            acc[k, 5] += r
            acc[k, 6] += c
            for ch in range(nc):
                acc[k, 7 + ch] += float(colour[r, c, ch])


class SplitMerge(BaseSegmenter):
    """Gray-level split-and-merge segmentation, with rules from region statistics to classes.

    ``segment(image)`` needs no fitting: a quadtree split (``quadtree_split``) into blocks
    whose gray-level range is at most ``threshold``, then a merge of adjacent regions
    whose union is still homogeneous, then (optionally) small regions absorbed by their
    most similar neighbour. ``fit(X, y)`` learns which regions get which class from their
    statistics, as a shallow decision tree that ``rules_`` prints as if-then rules.

    The merge visits the pairs of adjacent blocks in increasing order of the difference of
    their mean gray levels and merges two regions when the union passes the predicate:
    ``"range"``: ``max - min <= merge_threshold``; ``"std"``: standard deviation
    ``<= merge_threshold``. With ``"range"`` one sweep leaves no mergeable pair (a range
    only grows with the region); with ``"std"`` sweeps repeat until none merges.

    Parameters
    ----------
    threshold : float, optional
        Split threshold: largest gray-level range of a block, in the image's units. By
        default a tenth of the full range (25.5 for uint8 images, 6553.5 for uint16, 0.1 for
        float images, taken to be in [0, 1]).
    merge_threshold : float, optional
        Merge threshold (range or standard deviation, see ``predicate``), in the image's
        units. By default ``threshold`` for ``"range"`` and ``threshold / 4`` for ``"std"``.
    predicate : {"range", "std"}, default="range"
        Homogeneity of a merged region.
    min_size : int, default=1
        Blocks of this side or smaller are not split.
    max_size : int, optional
        Blocks larger than this always split.
    min_region_size : int, default=16
        Regions with fewer pixels are merged into their most similar neighbour after the
        merge; ``1`` keeps the classical result.
    max_depth : int, default=3
        Depth of the rules' decision tree.
    min_leaf_fraction : float, default=0.01
        Smallest share of the training pixels a rule may cover.
    class_weight : {"balanced"} or None, default=None
        Class weights of the tree (``"balanced"``: every class counts equally in total).
    smoothing : float, default=0.01
        Probabilities are ``(1 - smoothing) p + smoothing / K``, so that a refiner after
        this stage can still change a label that a pure rule would make certain.
    n_classes : int, optional
        K; by default one more than the largest label in ``y``.
    ignore_index : int, default=255
        Void label.
    random_state : int, RandomState instance or None, default=None
        Seed of the decision tree's tie breaks.

    Attributes
    ----------
    n_classes_ : int
        K.
    tree_ : sklearn.tree.DecisionTreeClassifier
        The fitted rules.
    feature_names_ : list of str
        Names of the region statistics: ``mean``, ``std``, ``min``, ``max`` (gray levels
        in the image's units), ``area`` (fraction of the image), ``row``, ``col`` (centroid
        as a fraction of height and width) and, for colour images, the channel means.
    rules_ : str
        The tree as indented if-then rules (``export_rules()``; class numbers).

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.classical import SplitMerge
    >>> image = np.zeros((8, 8), np.uint8)
    >>> image[:, 4:] = 200
    >>> SplitMerge(threshold=10, min_region_size=1).segment(image)[0].tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    >>> y = [(image > 100).astype(np.uint8)]
    >>> sm = SplitMerge(threshold=10, min_leaf_fraction=0.0).fit([image], y)
    >>> sm.predict([image])[0][0].tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    """

    _parameter_constraints = {
        "threshold": [None, Interval(numbers.Real, 0, None)],
        "merge_threshold": [None, Interval(numbers.Real, 0, None)],
        "predicate": [StrOptions({"range", "std"})],
        "min_size": [Interval(numbers.Integral, 1, None)],
        "max_size": [None, Interval(numbers.Integral, 1, None)],
        "min_region_size": [Interval(numbers.Integral, 1, None)],
        "max_depth": [Interval(numbers.Integral, 1, None)],
        "min_leaf_fraction": [Interval(numbers.Real, 0, 0.5)],
        "class_weight": [None, StrOptions({"balanced"})],
        "smoothing": [Interval(numbers.Real, 0, 1)],
        "n_classes": [None, Interval(numbers.Integral, 1, None)],
        "ignore_index": [numbers.Integral],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        threshold=None,
        *,
        merge_threshold=None,
        predicate="range",
        min_size=1,
        max_size=None,
        min_region_size=16,
        max_depth=3,
        min_leaf_fraction=0.01,
        class_weight=None,
        smoothing=0.01,
        n_classes=None,
        ignore_index=255,
        random_state=None,
    ):
        self.threshold = threshold
        self.merge_threshold = merge_threshold
        self.predicate = predicate
        self.min_size = min_size
        self.max_size = max_size
        self.min_region_size = min_region_size
        self.max_depth = max_depth
        self.min_leaf_fraction = min_leaf_fraction
        self.class_weight = class_weight
        self.smoothing = smoothing
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.random_state = random_state

    # -- segmentation ------------------------------------------------------------------
    def _thresholds(self, top, dtype):
        if self.threshold is None:
            t = (1.0 if top is None else top) / 10
        else:
            t = check_threshold(self.threshold, top, dtype)
        if self.merge_threshold is None:
            m = t if self.predicate == "range" else t / 4
        else:
            m = check_threshold(self.merge_threshold, top, dtype, name="merge_threshold")
        return t, m

    def _segment(self, image, name):
        gray, top = to_gray(image, name=name)
        t, m = self._thresholds(top, np.asarray(image).dtype)
        min_size, max_size = _check_sizes(self.min_size, self.max_size)
        regions, n = split_merge(gray, t, m, min_size, max_size, self.predicate,
                                 self.min_region_size)
        return gray, regions, n

    def segment(self, image):
        """Split-and-merge regions of one image; no fitting needed.

        Parameters
        ----------
        image : (H, W) or (H, W, C) array_like
            Gray image, or colour image (converted to its luminance).

        Returns
        -------
        regions : (H, W) ndarray of int32
            Region ids ``0 .. R - 1``, numbered in raster order of each region's first
            pixel. Every region is 4-connected.
        """
        self._validate_params()
        return self._segment(image, "image")[1]

    def _region_features(self, image, name):
        gray, regions, n = self._segment(image, name)
        image = np.asarray(image)
        if image.dtype == bool:
            image = image.astype(np.uint8)
        return regions, region_statistics(image, gray, regions, n)

    # -- learning ----------------------------------------------------------------------
    def fit(self, X, y):
        """Segment the images and learn rules from region statistics to classes.

        Each region contributes one training row per class present among its labelled
        pixels, weighted by that class's pixel count, so the tree's impurity is measured
        over pixels and void pixels count for nothing.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images; all gray or all with the same number of channels.
        y : sequence of (H, W) array_like of int
            Label maps.

        Returns
        -------
        self
        """
        from sklearn.tree import DecisionTreeClassifier

        self._validate_params()
        images, labels = self._check_images_labels(X, y, n_classes=self.n_classes)
        channels = {im.shape[2] if im.ndim == 3 else 1 for im in images}
        if len(channels) > 1:
            raise ValueError(
                f"X mixes images with different channel counts {sorted(channels)}; the "
                "rules use the same statistics for every image"
            )
        k = self._n_classes_from(labels)
        feats, targets, weights = [], [], []
        for i, (im, lab) in enumerate(zip(images, labels)):
            regions, stats = self._region_features(im, f"X[{i}]")
            valid = lab != self.ignore_index
            counts = np.bincount(
                regions[valid].astype(np.int64) * k + lab[valid].astype(np.int64),
                minlength=stats.shape[0] * k,
            ).reshape(stats.shape[0], k)
            r, c = np.nonzero(counts)
            feats.append(stats[r])
            targets.append(c)
            weights.append(counts[r, c].astype(np.float64))
        feats = np.concatenate(feats)
        if feats.shape[0] == 0:
            raise ValueError("y has no labelled pixels: every pixel is ignore_index")
        targets = np.concatenate(targets)
        weights = np.concatenate(weights)
        self.n_classes_ = k
        self.n_channels_ = channels.pop()
        self.feature_names_ = _feature_names(self.n_channels_)
        self.tree_ = DecisionTreeClassifier(
            max_depth=self.max_depth,
            min_weight_fraction_leaf=self.min_leaf_fraction,
            class_weight=self.class_weight,
            random_state=self.random_state,
        ).fit(feats, targets, sample_weight=weights)
        self.rules_ = self.export_rules()
        return self

    def export_rules(self, class_names=None, decimals=3):
        """The fitted rules as indented if-then text, one line per test or decision.

        A test whose two sides decide the same class everywhere below it is left out (the
        tree split there only to sharpen probabilities), so every line that remains
        changes a decision. Each decision shows the share of the training pixels it
        covers and how many of those are of its class.

        Parameters
        ----------
        class_names : sequence of str, optional
            Name of each class ``0 .. K - 1``; by default the class numbers.
        decimals : int, default=3
            Decimals of the thresholds.

        Returns
        -------
        rules : str

        Examples
        --------
        >>> import numpy as np
        >>> from hybridseg.classical import SplitMerge
        >>> image = np.zeros((8, 8), np.uint8)
        >>> image[:, 4:] = 200
        >>> y = [(image > 100).astype(np.uint8)]
        >>> sm = SplitMerge(threshold=10, min_leaf_fraction=0.0, random_state=1)
        >>> print(sm.fit([image], y).export_rules(class_names=["dark", "bright"]))
        if max <= 100.000:
            class dark  (50.0% of pixels, 100.0% right)
        else:
            class bright  (50.0% of pixels, 100.0% right)
        """
        check_is_fitted(self, "tree_")
        if class_names is not None and len(class_names) != self.n_classes_:
            raise ValueError(f"class_names has {len(class_names)} names for "
                             f"{self.n_classes_} classes")
        tree = self.tree_.tree_
        classes = self.tree_.classes_
        # Weighted class totals per node (normalised to fractions by recent scikit-learn).
        value = tree.value[:, 0, :]
        weight = tree.weighted_n_node_samples
        total = weight[0]
        left, right = tree.children_left, tree.children_right
        decided = {}

        def decisions(node):  # the set of classes the leaves under ``node`` decide
            if node not in decided:
                if left[node] < 0:
                    decided[node] = {int(np.argmax(value[node]))}
                else:
                    decided[node] = decisions(left[node]) | decisions(right[node])
            return decided[node]

        def name(c):
            c = int(classes[c])
            return str(c) if class_names is None else str(class_names[c])

        lines = []

        def emit(node, depth):
            pad = "    " * depth
            if left[node] < 0 or len(decisions(node)) == 1:
                dist = value[node] / value[node].sum()
                c = int(np.argmax(dist))
                lines.append(f"{pad}class {name(c)}  ({100 * weight[node] / total:.1f}% of "
                             f"pixels, {100 * dist[c]:.1f}% right)")
                return
            feat = self.feature_names_[tree.feature[node]]
            lines.append(f"{pad}if {feat} <= {tree.threshold[node]:.{decimals}f}:")
            emit(left[node], depth + 1)
            lines.append(f"{pad}else:")
            emit(right[node], depth + 1)

        emit(0, 0)
        return "\n".join(lines)

    def predict_proba(self, X):
        """Class probabilities of every pixel: the rule its region falls under.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images. Gray images are read as colour with ``R = G = B`` by rules fitted on
            colour, colour images as their luminance by rules fitted on gray; other
            channel counts must match those seen in ``fit``.

        Returns
        -------
        proba : list of (H, W, K) ndarray of float32
        """
        check_is_fitted(self, "tree_")
        images = check_images(X)
        out = []
        k = self.n_classes_
        n_feat = len(self.feature_names_)
        for i, im in enumerate(images):
            regions, stats = self._region_features(im, f"X[{i}]")
            if stats.shape[1] != n_feat:
                if n_feat == 7:  # fitted on gray: a colour image is read as its luminance
                    stats = stats[:, :7]
                elif stats.shape[1] == 7 and n_feat == 10:  # a gray image is R = G = B
                    stats = np.hstack([stats, np.repeat(stats[:, :1], 3, axis=1)])
                else:
                    c = im.shape[2] if im.ndim == 3 else 1
                    raise ValueError(
                        f"X[{i}] has {c} channels but SplitMerge was fitted on images "
                        f"with {self.n_channels_}"
                    )
            p = np.zeros((stats.shape[0], k), np.float64)
            p[:, self.tree_.classes_] = self.tree_.predict_proba(stats)
            p = (1 - self.smoothing) * p + self.smoothing / k
            out.append(p.astype(np.float32)[regions])
        return out
