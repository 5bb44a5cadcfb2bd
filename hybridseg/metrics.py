"""Segmentation metrics over collections of label maps.

Every metric takes ``y_true`` and ``y_pred`` as sequences of ``(H, W)`` integer label maps
(or ``(N, H, W)`` arrays), pools the pixels of all images into one confusion matrix (the
data-set level convention of PASCAL VOC, Cityscapes and CamVid papers, not a mean of
per-image scores) and skips pixels whose true label is ``ignore_index``.

Classes absent from both the truth and the prediction have no defined IoU (0 / 0): they are
reported as NaN by the per-class functions and left out of every mean.

The module offers ``confusion_matrix``, ``per_class_iou``, ``mean_iou``,
``pixel_accuracy``, ``mean_class_accuracy``, ``frequency_weighted_iou``, ``boundary_f1``,
``boundary_miou``, ``miou_interval`` and ``paired_miou_test`` (bootstrap intervals and
paired tests over images), ``segmentation_report`` and ``make_mean_iou_scorer``
(``mean_iou_scorer`` is the ready-made instance for ``GridSearchCV(scoring=...)``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .utils._memory import check_memory
from .utils._validation import (
    _native,
    check_ignore_index,
    check_label_map,
    check_n_classes,
    label_map_items,
)

__all__ = [
    "boundary_f1",
    "boundary_miou",
    "confusion_matrix",
    "frequency_weighted_iou",
    "make_mean_iou_scorer",
    "mean_class_accuracy",
    "mean_iou",
    "mean_iou_scorer",
    "miou_interval",
    "paired_miou_test",
    "per_class_iou",
    "pixel_accuracy",
    "segmentation_report",
]


# --------------------------------------------------------------------------- inputs
def _as_maps(y, name):
    """Split ``y`` into a list of 2-D arrays without copying or scanning the values."""
    maps = []
    for i, m in enumerate(label_map_items(y, name)):
        a = _native(np.asarray(m))
        if a.dtype == bool:
            a = a.view(np.uint8)
        elif a.dtype.kind not in "ui":
            a = check_label_map(a, name=f"{name}[{i}]", ignore_index=None)
        if a.ndim != 2 or a.size == 0:
            raise ValueError(
                f"{name}[{i}] must be a non-empty (H, W) label map, got shape {a.shape}"
            )
        maps.append(a)
    return maps


def _paired_maps(y_true, y_pred):
    t = _as_maps(y_true, "y_true")
    p = _as_maps(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(
            f"y_true has {len(t)} label maps but y_pred has {len(p)}: one prediction per "
            "image is expected"
        )
    for i, (a, b) in enumerate(zip(t, p)):
        if a.shape != b.shape:
            raise ValueError(
                f"y_true[{i}] has shape {a.shape} but y_pred[{i}] has shape {b.shape}"
            )
    return t, p


def _infer_n_classes(t, p, ignore_index):
    top = 0
    for a, b in zip(t, p):
        va = a[a != ignore_index] if ignore_index is not None else a
        if va.size:
            top = max(top, int(va.max()) + 1)
        top = max(top, int(b.max()) + 1)
    return max(top, 1)


def _confusion(y_true, y_pred, n_classes, ignore_index):
    import numba

    from ._metrics_kernels import accumulate_confusion

    ignore_index = check_ignore_index(ignore_index)
    t, p = _paired_maps(y_true, y_pred)
    inferred = n_classes is None
    if inferred:
        n_classes = _infer_n_classes(t, p, ignore_index)
    n_classes = check_n_classes(n_classes)
    hint = (f"n_classes was inferred from the largest label, {n_classes - 1}: pass "
            "n_classes, or look for stray labels in y_true and y_pred" if inferred else
            "pass a smaller n_classes")
    check_memory(8 * n_classes**2, f"a {n_classes} x {n_classes} confusion matrix", hint)
    cm = np.zeros((n_classes, n_classes), np.int64)
    has_ignore = ignore_index is not None
    ign = ignore_index if has_ignore else -1
    n_threads = numba.get_num_threads()
    for i, (a, b) in enumerate(zip(t, p)):
        bad_true, bad_pred = accumulate_confusion(a, b, n_classes, ign, has_ignore, n_threads, cm)
        if bad_true:
            check_label_map(a, name=f"y_true[{i}]", n_classes=n_classes,
                            ignore_index=ignore_index)
        if bad_pred:
            vals = np.unique(b[(b < 0) | (b >= n_classes)])
            shown = ", ".join(map(str, vals[:8])) + (", ..." if vals.size > 8 else "")
            raise ValueError(
                f"y_pred[{i}] holds labels {shown}; predicted labels must be in "
                f"[0, {n_classes})"
            )
    return cm


# --------------------------------------------------------------------------- from a matrix
def _safe_div(num, den):
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _iou_from_cm(cm):
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return _safe_div(inter, union)


def _nanmean(values):
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


# --------------------------------------------------------------------------- public
def confusion_matrix(y_true, y_pred, *, n_classes=None, ignore_index=255):
    """Confusion matrix pooled over all images.

    Parameters
    ----------
    y_true : sequence of (H, W) array_like of int, or (N, H, W) ndarray
        True label maps; pixels equal to ``ignore_index`` are not counted.
    y_pred : sequence of (H, W) array_like of int, or (N, H, W) ndarray
        Predicted label maps, the same sizes as ``y_true``, with labels in ``[0, K)``.
    n_classes : int, optional
        K. When omitted, one more than the largest label seen (pass it: a class missing
        from both inputs would otherwise be missing from the matrix).
    ignore_index : int or None, default=255
        The void label of ``y_true``.

    Returns
    -------
    cm : (K, K) ndarray of int64
        ``cm[i, j]`` counts the pixels of true class ``i`` predicted as ``j`` (rows are the
        truth, as in scikit-learn).

    Raises
    ------
    ValueError
        On mismatched numbers of maps or shapes, or labels outside ``[0, K)`` (other than
        ``ignore_index`` in ``y_true``).
    """
    return _confusion(y_true, y_pred, n_classes, ignore_index)


def per_class_iou(y_true, y_pred, *, n_classes=None, ignore_index=255):
    """Intersection over union of each class, pooled over all images.

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``.

    Returns
    -------
    iou : (K,) ndarray of float64
        ``TP / (TP + FP + FN)`` per class; NaN for a class absent from both the truth and
        the prediction.
    """
    return _iou_from_cm(_confusion(y_true, y_pred, n_classes, ignore_index))


def mean_iou(y_true, y_pred, *, n_classes=None, ignore_index=255):
    """Mean intersection over union (the Jaccard index averaged over classes).

    Classes absent from both the truth and the prediction are left out of the mean; a class
    present in only one of them counts with IoU 0.

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``.

    Returns
    -------
    miou : float
        In ``[0, 1]``.
    """
    return _nanmean(per_class_iou(y_true, y_pred, n_classes=n_classes,
                                  ignore_index=ignore_index))


def pixel_accuracy(y_true, y_pred, *, n_classes=None, ignore_index=255):
    """Fraction of non-void pixels labelled correctly.

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``.

    Returns
    -------
    accuracy : float
        NaN when every pixel is void.
    """
    cm = _confusion(y_true, y_pred, n_classes, ignore_index)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def mean_class_accuracy(y_true, y_pred, *, n_classes=None, ignore_index=255):
    """Mean over classes of the per-class recall ``TP / (TP + FN)``.

    Classes absent from the truth have no defined recall and are left out of the mean
    (whether or not they were predicted: predicting them lowers the other classes' recall).

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``.

    Returns
    -------
    accuracy : float
    """
    cm = _confusion(y_true, y_pred, n_classes, ignore_index)
    return _nanmean(_safe_div(np.diag(cm), cm.sum(1)))


def frequency_weighted_iou(y_true, y_pred, *, n_classes=None, ignore_index=255):
    """IoU averaged over classes with weights equal to each class's share of true pixels.

    Classes absent from the truth get weight zero, so classes absent from both are left out.

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``.

    Returns
    -------
    fwiou : float
    """
    cm = _confusion(y_true, y_pred, n_classes, ignore_index)
    return _fw_iou(cm)


def _fw_iou(cm):
    support = cm.sum(1).astype(np.float64)
    total = support.sum()
    if not total:
        return float("nan")
    iou = _iou_from_cm(cm)
    present = support > 0
    return float(np.sum(support[present] / total * iou[present]))


# --------------------------------------------------------------------------- uncertainty
def _image_counts(y_true, y_pred, n_classes, ignore_index):
    """Per image: intersections, true and predicted pixel counts per class, (N, K) each:
    what the intervals and paired tests resample."""
    ignore_index = check_ignore_index(ignore_index)
    t_maps, p_maps = _paired_maps(y_true, y_pred)
    n_classes = check_n_classes(n_classes)
    inter = np.zeros((len(t_maps), n_classes))
    true = np.zeros_like(inter)
    pred = np.zeros_like(inter)
    for i, (t, p) in enumerate(zip(t_maps, p_maps)):
        cm = _confusion([t], [p], n_classes, ignore_index)
        inter[i], true[i], pred[i] = np.diag(cm), cm.sum(1), cm.sum(0)
    return inter, true, pred


def _pooled_miou(*parts):
    """mIoU of images pooled with weights: ``parts`` are ``(weights, counts)`` pairs,
    weights (B, N) (resampling counts, or swap masks) and counts ``_image_counts``'s;
    returns (B,)."""
    i = sum(w @ c[0] for w, c in parts)
    union = sum(w @ c[1] + w @ c[2] for w, c in parts) - i
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, i / np.where(union > 0, union, 1), np.nan)
    out = np.full(len(iou), np.nan)
    has = ~np.isnan(iou).all(1)
    out[has] = np.nanmean(iou[has], 1)
    return out


def _check_resampling(confidence, n_boot, random_state, n_images):
    if n_images < 2:
        raise ValueError(f"a bootstrap over images needs at least 2 images, got {n_images}")
    if not (isinstance(confidence, numbers.Real) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if (isinstance(n_boot, (bool, np.bool_)) or not isinstance(n_boot, numbers.Integral)
            or n_boot < 100):
        raise ValueError(f"n_boot must be an int of at least 100, got {n_boot!r}")
    return np.random.default_rng(random_state)


def _resampling_weights(rng, n_boot, n):
    """(n_boot, n) counts of each image in ``n_boot`` resamplings with replacement."""
    idx = rng.integers(0, n, (n_boot, n))
    weights = np.zeros((n_boot, n))
    np.add.at(weights, (np.arange(n_boot)[:, None], idx), 1.0)
    return weights


def miou_interval(y_true, y_pred, *, n_classes, ignore_index=255, confidence=0.95,
                  n_boot=2000, random_state=0):
    """Bootstrap confidence interval of the mean IoU, resampling images.

    The images are drawn with replacement ``n_boot`` times; each draw's confusion is pooled
    as ``mean_iou`` pools, and the interval is the percentile interval of the draws'
    mean IoU. It says how much the score depends on which images the test set happened to
    hold, not how a retrained model would vary.

    Parameters
    ----------
    y_true, y_pred, ignore_index
        As in ``confusion_matrix`` (at least 2 images).
    n_classes : int
        K.
    confidence : float, default=0.95
    n_boot : int, default=2000
        Number of resamplings (at least 100).
    random_state : int, numpy Generator or None, default=0
        Seeds the resampling: the same seed gives the same interval.

    Returns
    -------
    low, high : float
    """
    counts = _image_counts(y_true, y_pred, n_classes, ignore_index)
    return _interval_from_counts(counts, confidence, n_boot, random_state)


def _interval_from_counts(counts, confidence=0.95, n_boot=2000, random_state=0):
    """``miou_interval`` from ``_image_counts``'s per-image counts."""
    rng = _check_resampling(confidence, n_boot, random_state, len(counts[0]))
    draws = _pooled_miou((_resampling_weights(rng, n_boot, len(counts[0])), counts))
    tail = 50 * (1 - confidence)
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def paired_miou_test(y_true, y_pred_a, y_pred_b, *, n_classes, ignore_index=255,
                     confidence=0.95, n_boot=2000, random_state=0):
    """Is ``b`` better than ``a`` on these images? The mIoU difference, its paired
    bootstrap interval and a paired permutation p-value.

    Both methods are scored on the same images. The interval resamples images (the same
    draw for both, so that what the images share cancels). The p-value is two-sided, from
    ``n_boot`` random swaps of the two methods' predictions image by image: the share of
    swaps whose pooled difference is at least as large in size as the observed one
    (``(count + 1) / (n_boot + 1)``, never 0).

    Parameters
    ----------
    y_true : sequence of (H, W) label maps
        At least 2 images.
    y_pred_a, y_pred_b : sequences of (H, W) label maps
        The two methods' predictions of the same images (``a`` the base, e.g. a network
        without its CRF).
    n_classes, ignore_index, confidence, n_boot, random_state
        As in ``miou_interval``.

    Returns
    -------
    result : dict
        ``delta`` (mIoU of ``b`` minus that of ``a``), ``ci_low``, ``ci_high``,
        ``p_value`` and ``n_images``.
    """
    a = _image_counts(y_true, y_pred_a, n_classes, ignore_index)
    b = _image_counts(y_true, y_pred_b, n_classes, ignore_index)
    return _paired_from_counts(a, b, confidence, n_boot, random_state)


def _paired_from_counts(a, b, confidence=0.95, n_boot=2000, random_state=0):
    """``paired_miou_test`` from the two methods' ``_image_counts`` on the same images."""
    n = len(a[0])
    if len(b[0]) != n:
        raise ValueError(f"the two methods were scored on {n} and {len(b[0])} images: a "
                         "paired test needs the same images")
    rng = _check_resampling(confidence, n_boot, random_state, n)
    ones = np.ones((1, n))
    delta = float(_pooled_miou((ones, b))[0] - _pooled_miou((ones, a))[0])
    weights = _resampling_weights(rng, n_boot, n)
    diffs = _pooled_miou((weights, b)) - _pooled_miou((weights, a))
    tail = 50 * (1 - confidence)
    low, high = np.nanpercentile(diffs, [tail, 100 - tail])
    # Under "no difference" each image's two predictions are exchangeable: swap them at
    # random, image by image, and pool each side.
    swap = (rng.random((n_boot, n)) < 0.5).astype(float)
    keep = 1.0 - swap
    null = _pooled_miou((keep, b), (swap, a)) - _pooled_miou((keep, a), (swap, b))
    extreme = int(np.sum(np.abs(null) >= abs(delta) - 1e-12))
    return {"delta": delta, "ci_low": float(low), "ci_high": float(high),
            "p_value": (extreme + 1) / (n_boot + 1), "n_images": n}


# --------------------------------------------------------------------------- boundaries
def _check_pixels(value, name):
    """A distance in pixels: a finite non-negative real number."""
    must = f"{name} must be a finite non-negative number of pixels, got {value!r}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(must)
    if not np.isfinite(value) or value < 0:
        raise ValueError(must)
    return float(value)


def _boundary_distance(t):
    """Euclidean distance of every pixel of the truth ``t`` (H, W) to its nearest boundary
    pixel: one with a 4-neighbour of another label, void included as a label; the image
    border is not a boundary. Infinite everywhere when ``t`` holds one label."""
    from scipy import ndimage

    b = np.zeros(t.shape, bool)
    b[:, :-1] |= t[:, :-1] != t[:, 1:]
    b[:, 1:] |= t[:, 1:] != t[:, :-1]
    b[:-1] |= t[:-1] != t[1:]
    b[1:] |= t[1:] != t[:-1]
    if not b.any():
        return np.full(t.shape, np.inf)
    return ndimage.distance_transform_edt(~b)


def _boundary_mious(t_maps, p_maps, n_classes, widths, ignore_index):
    """``boundary_miou`` at each of ``widths``, one distance transform per image."""
    cms = np.zeros((len(widths), n_classes, n_classes), np.int64)
    for i, (t, p) in enumerate(zip(t_maps, p_maps)):
        check_label_map(t, name=f"y_true[{i}]", n_classes=n_classes, ignore_index=ignore_index)
        check_label_map(p, name=f"y_pred[{i}]", n_classes=n_classes, ignore_index=None)
        dist = _boundary_distance(t)
        labelled = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
        for j, width in enumerate(widths):
            band = labelled & (dist <= width)
            pairs = t[band].astype(np.int64) * n_classes + p[band].astype(np.int64)
            cms[j] += np.bincount(pairs, minlength=n_classes**2).reshape(n_classes,
                                                                         n_classes)
    return [_nanmean(_iou_from_cm(cm)) for cm in cms]


def boundary_miou(y_true, y_pred, *, n_classes, width, ignore_index=255):
    """Mean IoU in a band around the true boundaries (DeepLab's trimap): where CRFs act.

    A boundary pixel of the truth is one with a 4-neighbour of another label (void counts
    as another label; the image border does not). The band holds the non-void pixels whose
    Euclidean distance to the nearest boundary pixel is at most ``width``; their confusion
    matrix is pooled over the images and its mean IoU taken as in ``mean_iou``.

    Parameters
    ----------
    y_true : sequence of (H, W) array_like of int, or (N, H, W) ndarray
        True label maps.
    y_pred : sequence of (H, W) array_like of int, or (N, H, W) ndarray
        Predicted label maps, the same sizes, labels in ``[0, K)``.
    n_classes : int
        K.
    width : float
        Half-width of the band in pixels (``>= 0``; 0 keeps the boundary pixels only).
    ignore_index : int or None, default=255
        The void label of ``y_true``.

    Returns
    -------
    miou : float
        In ``[0, 1]``; NaN when no image has a boundary.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.metrics import boundary_miou
    >>> t = np.zeros((6, 6), np.uint8); t[:, 3:] = 1
    >>> p = np.zeros((6, 6), np.uint8); p[:, 4:] = 1
    >>> round(boundary_miou([t], [p], n_classes=2, width=1), 4)  # (2/3 + 1/2) / 2
    0.5833
    """
    width = _check_pixels(width, "width")
    ignore_index = check_ignore_index(ignore_index)
    t_maps, p_maps = _paired_maps(y_true, y_pred)
    n_classes = check_n_classes(n_classes)
    return _boundary_mious(t_maps, p_maps, n_classes, [width], ignore_index)[0]


def _disk_offsets(tolerance):
    """Pixel offsets within ``tolerance`` (Euclidean), nearest first."""
    r = int(np.floor(tolerance))
    dr, dc = np.mgrid[-r:r + 1, -r:r + 1]
    d2 = (dr**2 + dc**2).ravel()
    keep = d2 <= tolerance**2 + 1e-9
    order = np.argsort(d2[keep], kind="stable")
    return (np.ascontiguousarray(dr.ravel()[keep][order], np.int64),
            np.ascontiguousarray(dc.ravel()[keep][order], np.int64))


def _image_boundary_f1(t, p, n_classes, ignore_index, tolerance, n_threads):
    from ._metrics_kernels import boundary_counts

    tol = tolerance if tolerance is not None else 0.0075 * math.hypot(*t.shape)
    d_rows, d_cols = _disk_offsets(tol)
    has_ignore = ignore_index is not None
    counts, present = boundary_counts(
        t, p, n_classes, ignore_index if has_ignore else -1, has_ignore, d_rows, d_cols,
        n_threads,
    )
    scores = np.full(n_classes, np.nan)
    for c in np.flatnonzero(present.any(1)):
        n_pred, hit_pred, n_true, hit_true = counts[c]
        if n_true == 0 and n_pred == 0:
            # The class fills its region without a boundary in either map: right only if
            # both maps contain it.
            scores[c] = float(present[c, 0] and present[c, 1])
        elif n_true == 0 or n_pred == 0:
            scores[c] = 0.0
        else:
            precision = hit_pred / n_pred
            recall = hit_true / n_true
            total = precision + recall
            scores[c] = 2 * precision * recall / total if total > 0 else 0.0
    return scores


def boundary_f1(
    y_true, y_pred, *, n_classes=None, ignore_index=255, tolerance=None, average="image"
):
    """Boundary F1 (BF) score: how well predicted class boundaries match the true ones.

    The contour-matching score of Csurka et al. (BMVC 2013), reported on CamVid by SegNet.
    For each image and each class present in its truth or prediction, the boundary pixels
    of the class (pixels with a 4-neighbour of another label) are matched between the two
    maps: precision is the share of predicted boundary pixels within ``tolerance`` pixels of
    a true one, recall the converse, and the class's BF is their harmonic mean. Void pixels
    are left out of both maps: a pixel next to a void pixel is not a boundary pixel on that
    account, in the truth or in the prediction, so a prediction that agrees with the truth
    on every labelled pixel scores 1.

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``.
    tolerance : float, optional
        Distance in pixels within which boundary pixels match. Default: 0.75 % of the
        image diagonal (as in Csurka et al. and MATLAB's ``bfscore``), 4.5 px at 360x480.
    average : {"image", None}, default="image"
        ``"image"``: the mean over images of the mean BF of the classes present in each
        image (a float). ``None``: per class, the mean BF over the images where the class
        is present (a ``(K,)`` array, NaN for classes present nowhere).

    Returns
    -------
    bf : float or (K,) ndarray of float64
    """
    if average not in ("image", None):
        raise ValueError(f"average must be 'image' or None, got {average!r}")
    if tolerance is not None:
        _check_pixels(tolerance, "tolerance")
    ignore_index = check_ignore_index(ignore_index)
    t_maps, p_maps = _paired_maps(y_true, y_pred)
    if tolerance is not None:
        # beyond the largest image's diagonal every boundary pixel is within reach anyway
        tolerance = min(float(tolerance), max(math.hypot(*m.shape) for m in t_maps))
    if n_classes is None:
        n_classes = _infer_n_classes(t_maps, p_maps, ignore_index)
    n_classes = check_n_classes(n_classes)
    import numba

    n_threads = numba.get_num_threads()
    per_image = []
    for i, (t, p) in enumerate(zip(t_maps, p_maps)):
        check_label_map(t, name=f"y_true[{i}]", n_classes=n_classes, ignore_index=ignore_index)
        check_label_map(p, name=f"y_pred[{i}]", n_classes=n_classes, ignore_index=None)
        per_image.append(
            _image_boundary_f1(t, p, n_classes, ignore_index, tolerance, n_threads)
        )
    per_image = np.array(per_image)
    if average == "image":
        return _nanmean([_nanmean(s) for s in per_image])
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(per_image)).sum(0)
        sums = np.nansum(per_image, 0)
    return _safe_div(sums, counts)


# --------------------------------------------------------------------------- report
def segmentation_report(
    y_true,
    y_pred,
    *,
    n_classes=None,
    class_names=None,
    ignore_index=255,
    boundary=False,
    tolerance=None,
    output_dict=False,
    digits=1,
):
    """A per-class table of IoU, recall, precision and support, with the summary metrics.

    Parameters
    ----------
    y_true, y_pred, n_classes, ignore_index
        As in ``confusion_matrix``. ``n_classes`` defaults to ``len(class_names)``.
    class_names : sequence of str, optional
        Names of the K classes; default ``"0"``, ``"1"``, ...
    boundary : bool, default=False
        Also compute the boundary F1 score (per class and mean); slower.
    tolerance : float, optional
        The boundary F1 tolerance in pixels (see ``boundary_f1``).
    output_dict : bool, default=False
        Return a dict instead of text.
    digits : int, default=1
        Decimals of the percentages in the text.

    Returns
    -------
    report : str or dict
        Text: percentages, one row per class, then the summary. Dict: fractions, with keys
        ``"classes"`` (name to ``{"iou", "recall", "precision", "support"[, "boundary_f1"]}``),
        ``"mean_iou"``, ``"pixel_accuracy"``, ``"mean_class_accuracy"``,
        ``"frequency_weighted_iou"`` (and ``"boundary_f1"``), ``"n_pixels"``. NaN marks
        undefined values (a class absent from both inputs).
    """
    cm = _confusion(y_true, y_pred, n_classes, ignore_index)
    k = cm.shape[0]
    if n_classes is None and class_names is not None:
        # K is the number of names: a label beyond them blames the names, and the classes
        # absent from both inputs count zero pixels
        if k > len(class_names):
            raise ValueError(f"class_names has {len(class_names)} names, but y_true or "
                             f"y_pred holds label {k - 1}: give one name per class")
        cm = np.pad(cm, (0, len(class_names) - k))
        k = cm.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names for {k} classes")
    iou = _iou_from_cm(cm)
    recall = _safe_div(np.diag(cm), cm.sum(1))
    precision = _safe_div(np.diag(cm), cm.sum(0))
    support = cm.sum(1)
    total = int(cm.sum())
    summary = {
        "mean_iou": _nanmean(iou),
        "pixel_accuracy": float(np.trace(cm) / total) if total else float("nan"),
        "mean_class_accuracy": _nanmean(recall),
        "frequency_weighted_iou": _fw_iou(cm),
    }
    bf = None
    if boundary:
        bf = boundary_f1(y_true, y_pred, n_classes=k, ignore_index=ignore_index,
                         tolerance=tolerance, average=None)
        summary["boundary_f1"] = boundary_f1(y_true, y_pred, n_classes=k,
                                             ignore_index=ignore_index, tolerance=tolerance)
    classes = {}
    for c, name in enumerate(class_names):
        row = {
            "iou": float(iou[c]),
            "recall": float(recall[c]),
            "precision": float(precision[c]),
            "support": int(support[c]),
        }
        if bf is not None:
            row["boundary_f1"] = float(bf[c])
        classes[name] = row
    if output_dict:
        return {"classes": classes, **summary, "n_pixels": total}

    def pct(x):
        return "-" if np.isnan(x) else f"{100 * x:.{digits}f}"

    cols = ["IoU %", "recall %", "precision %"] + (["BF %"] if bf is not None else [])
    width = max(len("frequency-weighted IoU"), *(len(n) for n in class_names))
    lines = [f"{'class':>{width}} " + " ".join(f"{c:>11}" for c in cols) + f" {'support':>12}"]
    for name, row in classes.items():
        vals = [row["iou"], row["recall"], row["precision"]]
        if bf is not None:
            vals.append(row["boundary_f1"])
        lines.append(
            f"{name:>{width}} " + " ".join(f"{pct(v):>11}" for v in vals)
            + f" {row['support']:>12d}"
        )
    lines.append("")
    labels = {
        "mean_iou": "mean IoU",
        "pixel_accuracy": "pixel accuracy",
        "mean_class_accuracy": "mean class accuracy",
        "frequency_weighted_iou": "frequency-weighted IoU",
        "boundary_f1": "boundary F1",
    }
    for key, value in summary.items():
        lines.append(f"{labels[key]:>{width}} {pct(value):>11}")
    lines.append(f"{'pixels counted':>{width}} {total:>11d}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- scorer
class _MeanIoUScorer:
    """Callable ``scorer(estimator, X, y) -> mean IoU`` for scikit-learn model selection."""

    def __init__(self, n_classes=None, ignore_index=255):
        self.n_classes = n_classes
        self.ignore_index = ignore_index

    def __call__(self, estimator, X, y):
        y_pred = estimator.predict(X)
        n_classes = self.n_classes
        if n_classes is None:
            n_classes = getattr(estimator, "n_classes_", None)
            if n_classes is None and hasattr(estimator, "steps"):
                n_classes = getattr(estimator.steps[-1][1], "n_classes_", None)
        return mean_iou(y, y_pred, n_classes=n_classes, ignore_index=self.ignore_index)

    def __repr__(self):
        return (
            f"make_mean_iou_scorer(n_classes={self.n_classes!r}, "
            f"ignore_index={self.ignore_index!r})"
        )


def make_mean_iou_scorer(*, n_classes=None, ignore_index=255):
    """A scorer for ``GridSearchCV(scoring=...)`` and ``cross_val_score``: mean IoU.

    Parameters
    ----------
    n_classes : int, optional
        K. By default the fitted estimator's ``n_classes_`` (or its last Pipeline step's),
        so that a class absent from a fold still counts.
    ignore_index : int or None, default=255
        The void label.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` returns the mean IoU of ``estimator.predict(X)``
        against ``y``; greater is better.
    """
    if n_classes is not None:
        n_classes = check_n_classes(n_classes)
    return _MeanIoUScorer(n_classes=n_classes, ignore_index=check_ignore_index(ignore_index))


mean_iou_scorer = make_mean_iou_scorer()
