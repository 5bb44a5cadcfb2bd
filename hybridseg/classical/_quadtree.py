"""Quadtree split: the first half of split-and-merge, with MATLAB ``qtdecomp`` semantics.

A square block splits into four quadrants while its gray-level range ``max - min`` exceeds
``threshold`` and its side is larger than ``min_size``; blocks larger than ``max_size``
split whatever their range. The image is placed in the top-left corner of a square whose
side is the next power of two; blocks are clipped to the image, so along the bottom and
right edges of an image whose sides are not powers of two the blocks are rectangles (their
range, size tests and statistics count only the pixels inside the image), and blocks that
would lie wholly outside it are never created. On a power-of-two square image this is
exactly ``qtdecomp``.

The work is a min/max pyramid built bottom-up (each level from the one below, in parallel
over rows) and a walk down it from the root that only visits the blocks it keeps or
splits, so the cost is linear in the number of pixels.
"""

from __future__ import annotations

import numbers

import numba
import numpy as np
from numba import prange

from ..utils._parallel import serialized_launches
from ..utils._validation import check_image

__all__ = ["quadtree_split"]

# ITU-R BT.709 luminance weights, the ones skimage.color.rgb2gray uses.
_LUMA = np.array([0.2125, 0.7154, 0.0721])


def to_gray(image, name="image"):
    """A gray image in the input's own units, and the largest level its dtype can hold.

    ``(H, W)`` images keep their dtype when it is uint8, uint16, float32 or float64 (other
    integers become float64); ``(H, W, 1)`` is squeezed; ``(H, W, 3)`` and ``(H, W, 4)``
    (alpha dropped) become the luminance ``0.2125 R + 0.7154 G + 0.0721 B`` as float32 in the
    same units (0-255 for uint8); any other channel count becomes the channel mean.
    The second value is the input dtype's largest value for unsigned integers (255 for
    uint8), None otherwise.
    """
    arr = check_image(image, name=name)
    top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind == "u" else None
    if arr.ndim == 3:
        c = arr.shape[2]
        if c == 1:
            arr = arr[:, :, 0]
        elif c in (3, 4):
            arr = (arr[:, :, :3].astype(np.float32) @ _LUMA.astype(np.float32))
        else:
            arr = arr.astype(np.float32).mean(axis=2)
    if arr.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr), top


def check_threshold(threshold, top, dtype, name="threshold"):
    """A finite, non-negative threshold in the image's units (at most its dtype's range)."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"{name} must be a real number in the image's gray-level units, got "
                        f"{type(threshold).__name__}")
    t = float(threshold)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {threshold!r}")
    if top is not None and t > top:
        raise ValueError(
            f"{name}={threshold!r} is out of range for a {dtype} image: gray levels "
            f"differ by at most {top:g}, so use a value in [0, {top:g}]"
        )
    return t


def _check_sizes(min_size, max_size):
    for name, v in (("min_size", min_size), ("max_size", max_size)):
        if v is None and name == "max_size":
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be a positive integer, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if max_size is not None and max_size < min_size:
        raise ValueError(f"max_size ({max_size}) must be >= min_size ({min_size})")
    return int(min_size), (None if max_size is None else int(max_size))


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _base_level(gray, s, mn, mx):
    """Min and max of every ``s x s`` block of the image (clipped at the edges)."""
    h, w = gray.shape
    bh, bw = mn.shape
    for bi in prange(bh):
        r0 = bi * s
        r1 = min(r0 + s, h)
        for bj in range(bw):
            c0 = bj * s
            c1 = min(c0 + s, w)
            lo = gray[r0, c0]
            hi = lo
            for r in range(r0, r1):
                for c in range(c0, c1):
                    v = gray[r, c]
                    if v < lo:
                        lo = v
                    elif v > hi:
                        hi = v
            mn[bi, bj] = lo
            mx[bi, bj] = hi


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _up_level(mn0, mx0, mn1, mx1):
    """Min and max of each 2 x 2 group of blocks of the level below."""
    h0, w0 = mn0.shape
    h1, w1 = mn1.shape
    for i in prange(h1):
        for j in range(w1):
            lo = mn0[2 * i, 2 * j]
            hi = mx0[2 * i, 2 * j]
            for di in range(2):
                r = 2 * i + di
                if r >= h0:
                    break
                for dj in range(2):
                    c = 2 * j + dj
                    if c >= w0:
                        break
                    if mn0[r, c] < lo:
                        lo = mn0[r, c]
                    if mx0[r, c] > hi:
                        hi = mx0[r, c]
            mn1[i, j] = lo
            mx1[i, j] = hi


@numba.njit(cache=True, nogil=True)
def _walk(mins, maxs, s0, h, w, threshold, min_size, max_size):
    """Walk down the pyramid from the root; the kept blocks in depth-first order.

    Children are visited top-left, top-right, bottom-left, bottom-right, the order of a
    recursive ``qtdecomp``, so block ids come out in that order. Returns the blocks' rows,
    columns, heights, widths, minima and maxima (as float64).
    """
    n_levels = len(mins)
    cap = 64
    rows = np.empty(cap, np.int64)
    cols = np.empty(cap, np.int64)
    hs = np.empty(cap, np.int64)
    ws = np.empty(cap, np.int64)
    lo = np.empty(cap, np.float64)
    hi = np.empty(cap, np.float64)
    n = 0
    # Stack of (level, block row, block column); at most 3 siblings wait per level.
    stack = np.empty((3 * n_levels + 4, 3), np.int64)
    top = 0
    stack[0, 0] = n_levels - 1
    stack[0, 1] = 0
    stack[0, 2] = 0
    top = 1
    while top > 0:
        top -= 1
        lev = stack[top, 0]
        bi = stack[top, 1]
        bj = stack[top, 2]
        s = s0 << lev
        vmin = float(mins[lev][bi, bj])
        vmax = float(maxs[lev][bi, bj])
        split = lev > 0 and (s > max_size or (s > min_size and vmax - vmin > threshold))
        if split:
            half_rows = mins[lev - 1].shape[0]
            half_cols = mins[lev - 1].shape[1]
            # Push in reverse so that the top-left child is taken first.
            for q in range(3, -1, -1):
                ci = 2 * bi + q // 2
                cj = 2 * bj + q % 2
                if ci < half_rows and cj < half_cols:
                    stack[top, 0] = lev - 1
                    stack[top, 1] = ci
                    stack[top, 2] = cj
                    top += 1
        else:
            if n == cap:
                cap *= 2
                rows = _grow(rows, cap)
                cols = _grow(cols, cap)
                hs = _grow(hs, cap)
                ws = _grow(ws, cap)
                lo = _grow(lo, cap)
                hi = _grow(hi, cap)
            r0 = bi * s
            c0 = bj * s
            rows[n] = r0
            cols[n] = c0
            hs[n] = min(s, h - r0)
            ws[n] = min(s, w - c0)
            lo[n] = vmin
            hi[n] = vmax
            n += 1
    return rows[:n], cols[:n], hs[:n], ws[:n], lo[:n], hi[:n]


@numba.njit(cache=True, nogil=True)
def _grow(a, cap):
    out = np.empty(cap, a.dtype)
    out[: a.shape[0]] = a
    return out


@serialized_launches
@numba.njit(cache=True, nogil=True, parallel=True)
def _paint(rows, cols, hs, ws, out):
    """Write each block's id over its pixels."""
    for b in prange(rows.shape[0]):
        r0 = rows[b]
        c0 = cols[b]
        for r in range(r0, r0 + hs[b]):
            for c in range(c0, c0 + ws[b]):
                out[r, c] = b


def split_blocks(gray, threshold, min_size, max_size):
    """The kept blocks of a checked gray image: rows, cols, heights, widths, mins, maxs."""
    h, w = gray.shape
    side = 1 << max(int(np.ceil(np.log2(max(h, w)))), 0)
    s0 = 1 << int(np.floor(np.log2(min_size)))
    s0 = min(s0, side)
    mins, maxs = [], []
    s = s0
    mn = np.empty((-(-h // s), -(-w // s)), gray.dtype)
    mx = np.empty_like(mn)
    _base_level(gray, s, mn, mx)
    mins.append(mn)
    maxs.append(mx)
    while s < side:
        s *= 2
        mn1 = np.empty((-(-h // s), -(-w // s)), gray.dtype)
        mx1 = np.empty_like(mn1)
        _up_level(mins[-1], maxs[-1], mn1, mx1)
        mins.append(mn1)
        maxs.append(mx1)
    big = np.iinfo(np.int64).max if max_size is None else max_size
    return _walk(numba.typed.List(mins), numba.typed.List(maxs), s0, h, w, float(threshold),
                 min_size, big)


def quadtree_split(image, *, threshold, min_size=1, max_size=None, return_blocks=False):
    """Split an image into square blocks of homogeneous gray level (a quadtree).

    A block splits into four quadrants while ``max - min > threshold`` over its pixels
    and its side is larger than ``min_size``; a block whose side is larger than
    ``max_size`` always splits. This is MATLAB's ``qtdecomp(I, threshold, [mindim
    maxdim])`` with ``threshold`` in the image's own gray-level units (0-255 for uint8)
    rather than scaled to [0, 1].

    Images of any size are accepted: the image sits in the top-left corner of a square of
    side the next power of two, and blocks are clipped to the image. Along the bottom and
    right edges of an image whose sides are not powers of two, blocks can therefore be
    rectangles (their range counts only the pixels inside the image); no block lies outside
    the image. On power-of-two square images the partition is exactly ``qtdecomp``'s.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array_like
        Gray image, or colour image converted to gray (luminance ``0.2125 R + 0.7154 G +
        0.0721 B`` for 3 or 4 channels, alpha ignored; the channel mean otherwise).
    threshold : float
        Largest gray-level range a block may have without splitting, ``>= 0``, in the
        image's units; for integer images at most the dtype's range (255 for uint8).
    min_size : int, default=1
        Blocks whose side is at most ``min_size`` never split (so no block is smaller than
        the largest power of two not above ``min_size``).
    max_size : int, optional
        Blocks whose side is larger than ``max_size`` always split.
    return_blocks : bool, default=False
        Also return the blocks as an ``(n_blocks, 4)`` array of ``(row, col, height,
        width)``, in id order.

    Returns
    -------
    block_ids : (H, W) ndarray of int32
        Block id of each pixel, ``0 .. n_blocks - 1`` in depth-first order (top-left,
        top-right, bottom-left, bottom-right quadrant), the order of a recursive split.
    blocks : (n_blocks, 4) ndarray of int64
        Only with ``return_blocks=True``.

    Raises
    ------
    ValueError
        If ``threshold`` is negative, not finite, or beyond the dtype's range; if the sizes
        are not positive or ``max_size < min_size``; if the image is empty or holds NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.classical import quadtree_split
    >>> image = np.zeros((4, 4), np.uint8)
    >>> image[0, 0] = 100
    >>> quadtree_split(image, threshold=10)
    array([[0, 1, 4, 4],
           [2, 3, 4, 4],
           [5, 5, 6, 6],
           [5, 5, 6, 6]], dtype=int32)
    """
    gray, top = to_gray(image)
    t = check_threshold(threshold, top, np.asarray(image).dtype)
    min_size, max_size = _check_sizes(min_size, max_size)
    rows, cols, hs, ws, _, _ = split_blocks(gray, t, min_size, max_size)
    out = np.empty(gray.shape, np.int32)
    _paint(rows, cols, hs, ws, out)
    if return_blocks:
        return out, np.stack([rows, cols, hs, ws], axis=1)
    return out
