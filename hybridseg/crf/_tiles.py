"""``refine_tiles``: any refiner on an image of any size, one tile (and its margin) at a
time, reading the image and the scores by slices and writing the labels by slices."""

from __future__ import annotations

import numbers

import numpy as np

from ..utils._validation import check_kind

__all__ = ["default_overlap", "places_tiles", "refine_tile", "refine_tiles", "tile_grid"]


def default_overlap(refiner):
    """The margin each tile is refined with, in pixels: three of the dense CRF's widest
    kernel widths (240 for its default bilateral ``sxy`` of 80); 32 for other refiners.

    ``DenseCRF.refine`` gets each tile's ``origin``, so its lattice is the whole image's
    and a tile differs from the whole-image refine only by the pixels beyond its margin.
    On a 4096x4096 CamVid mosaic (1024-pixel tiles, 5 iterations, noisy logits, K = 8;
    ``benchmarks/bench_huge.py``) the labels agreed with the whole image's on 99.51% of
    pixels with a margin of 1.5 widths, 99.93% with 3 and 100.00% with 6.
    """
    widths = [getattr(refiner, name, None) for name in ("gaussian_sxy", "bilateral_sxy")]
    widths = [float(w) for w in widths if isinstance(w, numbers.Real)]
    return int(np.ceil(3 * max(widths))) if widths else 32


def _spatial_shape(image, scores):
    s_shape, i_shape = tuple(scores.shape), tuple(image.shape)
    if len(s_shape) not in (3, 4):
        raise ValueError(f"scores must be (H, W, K) or (D, H, W, K), got shape {s_shape}")
    spatial = s_shape[:-1]
    if i_shape[:len(spatial)] != spatial or len(i_shape) > len(spatial) + 1:
        raise ValueError(f"image has shape {i_shape} but scores are {s_shape}: the image "
                         f"must be {spatial} or {spatial} + (C,)")
    return spatial, s_shape[-1]


def _check_out(out, spatial, k):
    dtype = np.dtype(np.uint8 if k <= 255 else np.uint16)
    if out is None:
        return np.empty(spatial, dtype)
    shape = tuple(getattr(out, "shape", ()))
    kind = np.dtype(getattr(out, "dtype", np.float64)).kind
    if shape != spatial:
        raise ValueError(f"out has shape {shape}, the labels need {spatial}")
    if kind not in "ui" or np.iinfo(out.dtype).max < k - 1:
        raise ValueError(f"out must be an integer array that holds labels up to {k - 1} "
                         f"(e.g. {dtype.name}), got {np.dtype(out.dtype).name}")
    return out


def tile_grid(shape, tile_size, overlap):
    """The tiles ``refine_tiles`` cuts an image into, for a tile loop of your own.

    Parameters
    ----------
    shape : tuple of int
        The image's spatial shape, ``(H, W)`` or ``(D, H, W)``.
    tile_size : int
        Side of each tile's core.
    overlap : int
        Margin around each core (less at the image's borders).

    Returns
    -------
    tiles : list of (core, halo)
        Tuples of slices, one per axis: the cores cover the image once, row by row; each
        halo is its core grown by ``overlap``, clipped to the image.
    """
    spatial = tuple(int(n) for n in shape)
    tile_size, overlap = int(tile_size), int(overlap)
    if tile_size < 1 or overlap < 0:
        raise ValueError(f"tile_size must be >= 1 and overlap >= 0, got {tile_size} and "
                         f"{overlap}")
    grids = [[slice(a, min(a + tile_size, n)) for a in range(0, n, tile_size)]
             for n in spatial]
    cores = [()]
    for axis in grids:
        cores = [(*c, s) for c in cores for s in axis]
    return [(core, tuple(slice(max(0, s.start - overlap), min(n, s.stop + overlap))
                         for s, n in zip(core, spatial))) for core in cores]


def places_tiles(refiner):
    """Whether ``refiner.refine`` takes ``origin=`` (the dense CRF on the numba or exact
    backend): its tiles then sit on the whole image's lattice."""
    import inspect

    try:
        params = inspect.signature(refiner.refine).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return "origin" in params and getattr(refiner, "backend", "numba") in ("numba", "exact")


def refine_tile(refiner, image, scores, core, halo, *, kind="proba", return_proba=False):
    """Refine one tile of ``tile_grid`` and keep its core: the step of ``refine_tiles``,
    for a loop of your own (scores made tile by tile by a network, say).

    Parameters
    ----------
    refiner : DenseCRF, GridCRF or any refiner with ``refine(image, scores, kind=)``
    image : (h, w[, C]) or (d, h, w[, C]) ndarray
        The image read over ``halo``.
    scores : (h, w, K) or (d, h, w, K) ndarray
        The class scores over ``halo``.
    core, halo : tuple of slice
        One tile of ``tile_grid``. A dense CRF gets ``origin=`` the halo's start, so that
        its lattice is the whole image's.
    kind : {"proba", "logits"}, default="proba"
    return_proba : bool, default=False
        Also return the core's float32 marginals.

    Returns
    -------
    labels : ndarray
        The core's labels, uint8 (uint16 when K > 255).
    proba : ndarray of float32
        The core's marginals ``(..., K)``, only with ``return_proba``.
    """
    extra = {"origin": tuple(h.start for h in halo)} if places_tiles(refiner) else {}
    q = refiner.refine(image, scores, kind=kind, **extra)
    inner = tuple(slice(c.start - h.start, c.stop - h.start) for c, h in zip(core, halo))
    q = np.asarray(q[inner])
    labels = q.argmax(-1).astype(np.uint8 if q.shape[-1] <= 255 else np.uint16)
    return (labels, q.astype(np.float32, copy=False)) if return_proba else labels


def _release(array):
    """Drop the pages a numpy memmap has mapped from this process's resident set (they
    stay in the page cache; a shared mapping's writes are kept), so that reading or
    writing a memmap tile by tile does not grow the resident set to the file's size."""
    mm = getattr(array, "_mmap", None)
    if not isinstance(array, np.memmap) or mm is None or getattr(array, "mode", "") == "c":
        return
    import mmap

    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:  # not Linux/macOS: leave the pages to the OS
        return
    try:
        if array.mode != "r":
            mm.flush()
        mm.madvise(advice)
    except (OSError, ValueError):
        pass


def _check_proba_out(proba_out, spatial, k):
    if proba_out is None:
        return None
    shape = tuple(getattr(proba_out, "shape", ()))
    dtype = np.dtype(getattr(proba_out, "dtype", np.int64))
    if shape != (*spatial, k) or dtype.kind != "f":
        raise ValueError(f"proba_out must be a float array of shape {(*spatial, k)}, got "
                         f"{dtype.name} of shape {shape}")
    return proba_out


def refine_tiles(refiner, image, scores, *, kind="proba", tile_size=1024, overlap=None,
                 out=None, n_jobs=None, proba_out=None):
    """Refine an image of any size tile by tile and return (or write) its labels.

    Each tile is refined with a margin of ``overlap`` pixels on every side (less at the
    image's borders) and only its core is kept, so that every pixel is labelled from a
    window that reaches ``overlap`` pixels around it; nothing is read whole. Peak memory
    is set by ``tile_size + 2 * overlap`` and K, not by the image's size.

    How the result differs from the whole-image refine: a pixel's label depends on the
    scores and colours within ``overlap`` of it only, where the whole-image mean field
    lets every pixel reach every other (the dense CRF's Gaussian kernels make that reach
    negligible beyond a few kernel widths, and the dense CRF's tiles sit on the whole
    image's lattice). A grid CRF's graph cut is global: a tile's cut can differ from the
    whole image's near its margin's edge, and the margin holds such changes away from
    the core.

    Parameters
    ----------
    refiner : DenseCRF, GridCRF or any refiner with ``refine(image, scores, kind=)``
        Fitted or not; used as it is.
    image : (H, W[, C]) or (D, H, W[, C]) array-like that reads by slices
        numpy arrays, memmaps, zarr or dask arrays, or any object with ``shape`` and
        ``__getitem__`` taking a tuple of slices.
    scores : (H, W, K) or (D, H, W, K) array-like that reads by slices
        Class scores (any float type; each tile is read as float32).
    kind : {"proba", "logits"}, default="proba"
    tile_size : int, default=1024
        Side of each tile's core, in pixels; more than ``overlap``.
    overlap : int, optional
        Margin of each tile; by default ``default_overlap(refiner)`` (240 pixels for the
        dense CRF's default kernels).
    out : array-like that takes slice assignment, optional
        Where to write the labels (a numpy array or memmap, a zarr array), of shape
        ``(H, W)`` (or ``(D, H, W)``) and an integer type that holds ``K - 1``.
    n_jobs : int, optional
        Tiles refined in parallel through joblib (``joblib.parallel_config(backend=
        "dask")`` sends them to a Dask cluster); each task returns only its core's
        labels (and marginals).
    proba_out : array-like that takes slice assignment, optional
        Where to write the marginals too: float, of shape ``(H, W, K)`` (or
        ``(D, H, W, K)``); float16 halves the disk.

    Returns
    -------
    labels : ndarray or ``out``
        uint8 labels (uint16 when K > 255), or ``out`` filled.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.crf import DenseCRF, refine_tiles
    >>> rng = np.random.default_rng(0)
    >>> image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    >>> logits = rng.normal(size=(300, 400, 4)).astype(np.float32)
    >>> labels = refine_tiles(DenseCRF(n_iter=2), image, logits, kind="logits",
    ...                       tile_size=256, overlap=60)
    >>> labels.shape, labels.dtype
    ((300, 400), dtype('uint8'))
    """
    check_kind(kind)
    spatial, k = _spatial_shape(image, scores)
    if (isinstance(tile_size, (bool, np.bool_)) or not isinstance(tile_size, numbers.Integral)
            or tile_size < 8):
        raise ValueError(f"tile_size must be an int of at least 8 pixels, got {tile_size!r}")
    overlap = default_overlap(refiner) if overlap is None else overlap
    if (isinstance(overlap, (bool, np.bool_)) or not isinstance(overlap, numbers.Integral)
            or overlap < 0):
        raise ValueError(f"overlap must be an int >= 0, got {overlap!r}")
    if tile_size <= overlap:
        raise ValueError(f"tile_size ({tile_size}) must be larger than overlap ({overlap}): "
                         "otherwise each tile refines more margin than core")
    out = _check_out(out, spatial, k)
    proba_out = _check_proba_out(proba_out, spatial, k)
    with_proba = proba_out is not None

    def run(core, halo):
        im = np.asarray(image[halo])
        sc = np.asarray(scores[(*halo, slice(None))], dtype=np.float32)
        _release(image)
        _release(scores)
        got = refine_tile(refiner, im, sc, core, halo, kind=kind, return_proba=with_proba)
        return (core, *got) if with_proba else (core, got, None)

    tiles = tile_grid(spatial, tile_size, overlap)
    if n_jobs in (None, 1) or len(tiles) < 2:
        results = (run(core, halo) for core, halo in tiles)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(run)(core, halo) for core, halo in tiles)
    for core, labels, proba in results:
        out[core] = labels
        _release(out)
        if with_proba:
            proba_out[(*core, slice(None))] = proba
            _release(proba_out)
    return out
