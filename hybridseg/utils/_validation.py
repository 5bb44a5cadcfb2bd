"""Validation of the data contract at the public boundary.

Every public function and estimator passes its inputs through these helpers once, so that
bad input gets a clear ``ValueError`` or ``TypeError`` naming the argument and what was
expected, long before a numba kernel could fail with a traceback nobody can read.

The contract (see ``docs/architecture.md``):

- an **image** is an ``(H, W)`` gray or ``(H, W, C)`` colour array, integer or float, finite;
- **images** ``X`` are a sequence of images, whose sizes may differ, or a stacked
  ``(N, H, W)`` / ``(N, H, W, C)`` array;
- a **label map** is an ``(H, W)`` integer array with values in ``[0, K)``, or
  ``ignore_index`` for void pixels;
- **scores** are ``(H, W, K)`` float32 arrays, class axis last, either probabilities
  (``kind="proba"``, non-negative, summing to one over the class axis) or logits
  (``kind="logits"``, any finite values).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "check_ignore_index",
    "check_image",
    "check_image_and_scores",
    "check_images",
    "check_kind",
    "check_label_map",
    "check_label_maps",
    "check_matching_lengths",
    "check_n_classes",
    "check_scores",
]

_KINDS = ("proba", "logits")
# Probabilities must sum to one over the class axis within this tolerance. float32 scores
# from a softmax sum to 1 within ~1e-6; the slack admits float16 storage and rounding.
_PROBA_SUM_TOL = 1e-3
# Score arrays at least this large are checked by one numba pass (utils/_scan.py).
_SCAN_SIZE = 1 << 20


def _is_sequence(obj):
    return isinstance(obj, Sequence) and not isinstance(obj, (str, bytes))


def _format_shape(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_kind(kind, *, name="kind"):
    """Check that ``kind`` names a kind of scores: ``"proba"`` or ``"logits"``."""
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"{name} must be 'proba' or 'logits', got {kind!r}")
    return kind


def check_n_classes(n_classes, *, name="n_classes", allow_none=False):
    """Check a class count: an int >= 1 (or ``None`` where ``allow_none``)."""
    if n_classes is None and allow_none:
        return None
    if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"{name} must be >= 1, got {n_classes}")
    return int(n_classes)


def check_ignore_index(ignore_index, *, name="ignore_index"):
    """Check the void label: an int, or ``None`` for "no void pixels"."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(
        ignore_index, numbers.Integral
    ):
        raise TypeError(f"{name} must be an int or None, got {ignore_index!r}")
    return int(ignore_index)


def _native(arr):
    """``arr`` in the machine's byte order (a big-endian copy is converted once here, at
    the boundary: numba kernels and torch read native byte order only)."""
    if arr.dtype.kind in "uifb" and not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_image(image, *, name="image"):
    """Validate one image.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array_like
        Gray or colour image, integer, boolean or float.
    name : str
        The argument's name, for messages.

    Returns
    -------
    image : (H, W) or (H, W, C) ndarray
        The same data as an ndarray (not copied where it already is one); a boolean image
        is black and white, uint8 0 and 255 (as PIL reads a 1-bit image).

    Raises
    ------
    TypeError
        If it is not numeric.
    ValueError
        If it has the wrong number of dimensions, is empty, or holds NaN or inf.
    """
    if image is None:
        raise TypeError(f"{name} must be an (H, W) or (H, W, C) array, got None")
    arr = _native(np.asarray(image))
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype.kind not in "uif":
        raise TypeError(
            f"{name} must hold integers or floats, got an array of dtype {arr.dtype}"
        )
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be an (H, W) gray or (H, W, C) colour image, "
            f"got an array of shape {_format_shape(arr.shape)}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {_format_shape(arr.shape)}")
    if arr.dtype.kind == "f":
        top = float(np.abs(arr).max())  # NaN where any value is
        if not np.isfinite(top):
            raise ValueError(f"{name} holds NaN or infinite values")
        if top > _FLOAT32_MAX:
            raise ValueError(f"{name} holds values up to {top:.3g}, beyond the float32 range "
                             f"(about {_FLOAT32_MAX:.3g}) in which the stages compute: rescale "
                             "it")
    return arr


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def unit_of(dtype):
    """What the one reading rule divides pixel values of ``dtype`` by: 65535 for uint16,
    255 for every other integer type (8-bit values), 1 for floats."""
    dtype = np.dtype(dtype)
    if dtype == np.uint16:
        return 65535.0
    return 255.0 if dtype.kind in "uib" else 1.0


def as_unit_float(image):
    """An image as float32 by the one reading rule of every stage: uint16 / 65535, other
    integers / 255 (8-bit values), floats as they are (expected in ``[0, 1]``). So a uint8
    image and the same image as floats in ``[0, 1]`` agree."""
    unit = unit_of(image.dtype)
    if unit == 1.0:
        return image.astype(np.float32, copy=False)
    return image.astype(np.float32) / np.float32(unit)


def unit_range(image):
    """``(low, high)`` of an image read by ``as_unit_float``, without making the copy."""
    unit = unit_of(image.dtype)
    return float(image.min()) / unit, float(image.max()) / unit


def warn_outside_range(images, fitted, *, who, name="X"):
    """Warn once when an image, read by ``as_unit_float``, falls far outside ``fitted``, the
    ``(low, high)`` range the estimator's training images were read in: a float copy of
    8-bit pixels, say, which it would label wrongly without a word."""
    import warnings

    lo, hi = fitted
    span = max(hi - lo, 1e-6)
    for i, im in enumerate(images):
        raw = np.asarray(im)
        a_lo, a_hi = unit_range(raw)
        beyond = a_hi > hi + 2 * span or a_lo < lo - 2 * span
        # fitted on floats in raw units (0-255, say), given integers read into [0, 1]
        shrunk = span > 2 and raw.dtype.kind in "ui"
        # 8-bit values in a uint16 array: read / 65535, all but black
        eight_in_16 = raw.dtype == np.uint16 and a_hi <= 255 / 65535 and hi > 0.1
        if beyond or shrunk or eight_in_16:
            warnings.warn(
                f"{name}[{i}] ({np.asarray(im).dtype}) is read in [{a_lo:.3g}, {a_hi:.3g}], "
                f"but {who} was fitted on images read in [{lo:.3g}, {hi:.3g}]: its labels "
                "may be wrong. Images are read as uint16 / 65535, other integers / 255 and "
                f"floats as they are; give {name} in the dtype and range of the training "
                "images", UserWarning, stacklevel=4)
            return


def check_images(X, *, name="X"):
    """Validate a collection of images.

    Parameters
    ----------
    X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
        The images; sizes may differ between images. A 3-D ndarray is read as ``N`` gray
        images, a 4-D one as ``N`` colour images; to pass one image, wrap it in a list.
    name : str
        The argument's name, for messages.

    Returns
    -------
    images : list of ndarray
        One array per image (views of the input, not copies).
    """
    if all(hasattr(X, a) for a in ("images", "scores", "kind")):  # Unaries, or alike
        raise TypeError(
            f"{name} must be images, got {type(X).__name__} (images with class scores); "
            "a segmenter takes images, a refiner takes Unaries"
        )
    if X is None or isinstance(X, (str, bytes, dict)):
        raise TypeError(
            f"{name} must be a sequence of images or an (N, H, W[, C]) array, got "
            f"{type(X).__name__}"
        )
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} must be dense images; sparse matrices are not supported")
    if isinstance(X, np.ndarray):
        if X.ndim not in (3, 4):
            hint = " (to pass one image, wrap it in a list: [image])" if X.ndim == 2 else ""
            raise ValueError(
                f"{name} must be a sequence of images or an (N, H, W) / (N, H, W, C) "
                f"array, got an array of shape {_format_shape(X.shape)}{hint}"
            )
        items = list(X)
    elif _is_sequence(X) or hasattr(X, "__iter__"):
        items = list(X)
    else:
        raise TypeError(
            f"{name} must be a sequence of images or an (N, H, W[, C]) array, got "
            f"{type(X).__name__}"
        )
    if len(items) == 0:
        raise ValueError(f"{name} is empty: expected at least one image")
    return [check_image(im, name=f"{name}[{i}]") for i, im in enumerate(items)]


def _check_label_values(arr, n_classes, ignore_index, name):
    lo, hi = arr.min(), arr.max()
    if lo >= 0 and (n_classes is None or hi < n_classes):
        return
    ok = (arr >= 0) if n_classes is None else ((arr >= 0) & (arr < n_classes))
    if ignore_index is not None:
        ok |= arr == ignore_index
    if ok.all():
        return
    bad = np.unique(arr[~ok])
    shown = ", ".join(str(v) for v in bad[:8]) + (", ..." if bad.size > 8 else "")
    allowed = "non-negative" if n_classes is None else f"in [0, {n_classes})"
    void = "" if ignore_index is None else f" or {ignore_index} (ignore_index)"
    raise ValueError(f"{name} holds labels {shown}; labels must be {allowed}{void}")


def check_label_map(y, *, name="y", shape=None, n_classes=None, ignore_index=255):
    """Validate one label map.

    Parameters
    ----------
    y : (H, W) array_like of int
        Class labels; booleans are read as 0/1, floats only when every value is whole.
    name : str
        The argument's name, for messages.
    shape : tuple of int, optional
        The ``(H, W)`` the map must have (its image's size).
    n_classes : int, optional
        When given, labels must lie in ``[0, n_classes)`` or equal ``ignore_index``.
    ignore_index : int or None, default=255
        The void label.

    Returns
    -------
    y : (H, W) ndarray of int
    """
    if y is None:
        raise TypeError(f"{name} must be an (H, W) integer label map, got None")
    arr = _native(np.asarray(y))
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise TypeError(
                f"{name} must hold integer labels, got {arr.dtype} values that are not "
                "whole numbers"
            )
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "ui":
        raise TypeError(f"{name} must hold integer labels, got an array of dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be an (H, W) label map, got an array of shape "
            f"{_format_shape(arr.shape)}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {_format_shape(arr.shape)}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {_format_shape(arr.shape)} but its image is "
            f"{_format_shape(shape)}"
        )
    _check_label_values(arr, n_classes, ignore_index, name)
    return arr


def label_map_items(y, name="y"):
    """The items of a collection of label maps, unchecked: a clear error for what is no
    collection (a string, a dict, an array that is not ``(N, H, W)``) or an empty one.

    Parameters
    ----------
    y : sequence of (H, W) array_like, or (N, H, W) ndarray
    name : str
        The argument's name, for messages.

    Returns
    -------
    items : list
        ``list(y)``: views of an array's maps, the sequence's items as they are.
    """
    if y is None or isinstance(y, (str, bytes, dict)):
        raise TypeError(
            f"{name} must be a sequence of (H, W) label maps or an (N, H, W) array, got "
            f"{type(y).__name__}"
        )
    if isinstance(y, np.ndarray) and y.ndim != 3:
        hint = " (to pass one map, wrap it in a list: [y])" if y.ndim == 2 else ""
        raise ValueError(
            f"{name} must be a sequence of (H, W) label maps or an (N, H, W) array, "
            f"got an array of shape {_format_shape(y.shape)}{hint}"
        )
    items = list(y)
    if len(items) == 0:
        raise ValueError(f"{name} is empty: expected at least one label map")
    return items


def check_label_maps(y, *, name="y", shapes=None, n_classes=None, ignore_index=255):
    """Validate a collection of label maps.

    Parameters
    ----------
    y : sequence of (H, W) array_like of int, or (N, H, W) ndarray
        One label map per image.
    name : str
        The argument's name, for messages.
    shapes : sequence of tuple, optional
        The ``(H, W)`` of each image; the number of maps and their sizes must match.
    n_classes : int, optional
        When given, labels must lie in ``[0, n_classes)`` or equal ``ignore_index``.
    ignore_index : int or None, default=255
        The void label.

    Returns
    -------
    y : list of (H, W) ndarray of int
    """
    items = label_map_items(y, name)
    if shapes is not None and len(shapes) != len(items):
        raise ValueError(f"{name} has {len(items)} label maps for {len(shapes)} images")
    return [
        check_label_map(
            m,
            name=f"{name}[{i}]",
            shape=None if shapes is None else shapes[i],
            n_classes=n_classes,
            ignore_index=ignore_index,
        )
        for i, m in enumerate(items)
    ]


def check_labelled(labels, *, ignore_index=255, name="y"):
    """Refuse label maps in which every pixel is void: nothing to learn from.

    Parameters
    ----------
    labels : sequence of (H, W) ndarray of int
        Checked label maps (``check_label_maps``).
    ignore_index : int or None, default=255
    name : str
        The argument's name, for messages.

    Raises
    ------
    ValueError
        When no pixel has a label other than ``ignore_index``.
    """
    if ignore_index is not None and all((m == ignore_index).all() for m in labels):
        raise ValueError(f"{name} holds no labelled pixel: every pixel is ignore_index "
                         f"({ignore_index})")


def check_scores(
    scores, *, kind="proba", name="scores", spatial_shape=None, n_classes=None
):
    """Validate one image's class scores and return them as C-contiguous float32.

    Parameters
    ----------
    scores : (H, W, K) array_like of float
        Per-pixel class scores, class axis last.
    kind : {"proba", "logits"}
        ``"proba"``: probabilities, in ``[0, 1]`` and summing to one over the class axis.
        ``"logits"``: unnormalised log-probabilities, any finite values.
    name : str
        The argument's name, for messages.
    spatial_shape : tuple of int, optional
        The ``(H, W)`` the scores must have (their image's size).
    n_classes : int, optional
        The ``K`` the scores must have.

    Returns
    -------
    scores : (H, W, K) ndarray of float32, C-contiguous
    """
    check_kind(kind)
    if scores is None:
        raise TypeError(f"{name} must be an (H, W, K) array of class scores, got None")
    arr = np.asarray(scores)
    if arr.dtype.kind not in "uif":
        raise TypeError(f"{name} must hold floats, got an array of dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be (H, W, K) with the class axis last, got an array of shape "
            f"{_format_shape(arr.shape)}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {_format_shape(arr.shape)}")
    if spatial_shape is not None and tuple(arr.shape[:2]) != tuple(spatial_shape):
        hint = ""
        if tuple(arr.shape[1:]) == tuple(spatial_shape):
            hint = (
                "; they look like (K, H, W) with the class axis first: pass "
                "np.moveaxis(scores, 0, -1)"
            )
        raise ValueError(
            f"{name} has shape {_format_shape(arr.shape)} but its image is "
            f"{_format_shape(spatial_shape)}: expected (H, W, K) = "
            f"{_format_shape((*spatial_shape, 'K'))}{hint}"
        )
    if n_classes is not None and arr.shape[2] != n_classes:
        raise ValueError(f"{name} has {arr.shape[2]} classes, expected {n_classes}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size >= _SCAN_SIZE:  # one pass instead of four (a 720x960x21 array: 8x faster)
        from ._scan import scan_scores

        bad, lo, hi, worst = scan_scores(arr, kind == "proba")
        if bad:
            raise ValueError(f"{name} holds NaN or infinite values")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    elif kind == "proba":
        lo, hi = float(arr.min()), float(arr.max())
        worst = float(np.abs(arr.sum(axis=2, dtype=np.float64) - 1.0).max())
    if kind == "proba":
        if lo < -1e-6 or hi > 1 + 1e-6 or worst > _PROBA_SUM_TOL:
            raise ValueError(
                f"{name} are not probabilities (values in [{lo:.3g}, {hi:.3g}], sums over "
                f"the class axis off by up to {worst:.3g}); if they are logits, pass "
                "kind='logits'"
            )
    return arr


def check_image_and_scores(image, scores, *, kind="proba"):
    """Validate one image and its scores together, or one volume and its scores.

    Parameters
    ----------
    image : (H, W), (H, W, C), (D, H, W) or (D, H, W, C) array_like
        A volume when ``scores`` are 4-D.
    scores : (H, W, K) or (D, H, W, K) array_like of float
    kind : {"proba", "logits"}

    Returns
    -------
    image : ndarray
    scores : ndarray of float32, C-contiguous
        As :func:`check_image` and :func:`check_scores` return them.
    """
    arr = np.asarray(scores) if scores is not None else None
    if arr is None or arr.ndim != 4:
        image = check_image(image, name="image")
        return image, check_scores(scores, kind=kind, spatial_shape=image.shape[:2])
    img = np.asarray(image) if image is not None else None
    if img is None or img.ndim not in (3, 4):
        raise ValueError(
            "with (D, H, W, K) scores of a volume, image must be (D, H, W) or "
            f"(D, H, W, C), got {None if img is None else _format_shape(img.shape)}"
        )
    d, h, w = img.shape[:3]
    if arr.shape[:3] != img.shape[:3]:
        raise ValueError(
            f"scores have shape {_format_shape(arr.shape)} but their volume is "
            f"{_format_shape(img.shape[:3])}: expected (D, H, W, K) = ({d}, {h}, {w}, K)"
        )
    # Validated as one tall (D * H, W) image: the same checks, one code path.
    flat = check_image(img.reshape(d * h, *img.shape[2:]), name="image")
    s = check_scores(arr.reshape(d * h, w, -1), kind=kind, name="scores")
    return flat.reshape(img.shape), s.reshape(arr.shape)


def check_matching_lengths(**named):
    """Check that named sequences have the same length; return that length."""
    lengths = {k: len(v) for k, v in named.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"inputs have different numbers of images: {desc}")
    return next(iter(lengths.values()))
