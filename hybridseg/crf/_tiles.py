"""``refine_tiles``: any refiner on an image of any size, one tile (and its margin) at a
time, reading the image and the scores by slices and writing the labels by slices."""

from __future__ import annotations

import numbers

import numpy as np

from ..utils._validation import check_kind

__all__ = ["default_overlap", "refine_tiles"]


def default_overlap(refiner):
    """The margin each tile is refined with, in pixels: three of the dense CRF's widest
    kernel widths (240 for its default bilateral ``sxy`` of 80); 32 for other refiners.

    ``DenseCRF.refine`` gets each tile's ``origin``, so its lattice is the whole image's
    and a tile differs from the whole-image refine only by the pixels beyond its margin.
    On a 720x1440 CamVid mosaic (600-pixel tiles, 5 iterations, noisy logits) the labels
    agreed with the whole image's on 99.10% of pixels with a margin of 1.5 widths, 99.89%
    with 3 and 99.99% with 4.5.
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


def _tiles(spatial, tile_size, overlap):
    """``(core, halo)`` slice tuples covering ``spatial`` with cores of ``tile_size``."""
    grids = [[slice(a, min(a + tile_size, n)) for a in range(0, n, tile_size)]
             for n in spatial]
    cores = [()]
    for axis in grids:
        cores = [(*c, s) for c in cores for s in axis]
    return [(core, tuple(slice(max(0, s.start - overlap), min(n, s.stop + overlap))
                         for s, n in zip(core, spatial))) for core in cores]


def refine_tiles(refiner, image, scores, *, kind="proba", tile_size=1024, overlap=None,
                 out=None, n_jobs=None):
    """Refine an image of any size tile by tile and return (or write) its labels.

    Each tile is refined with a margin of ``overlap`` pixels on every side (less at the
    image's borders) and only its core is kept, so that every pixel is labelled from a
    window that reaches ``overlap`` pixels around it; nothing is read whole.

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
        labels.

    Returns
    -------
    labels : ndarray or ``out``
        uint8 labels (uint16 when K > 255), or ``out`` filled.
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
    dtype = np.uint8 if k <= 255 else np.uint16

    import inspect

    try:  # a refiner that places its tiles in the whole image (DenseCRF's lattice)
        at_origin = "origin" in inspect.signature(refiner.refine).parameters and getattr(
            refiner, "backend", "numba") in ("numba", "exact")
    except (TypeError, ValueError):
        at_origin = False

    def run(core, halo):
        im = np.asarray(image[halo])
        sc = np.asarray(scores[(*halo, slice(None))], dtype=np.float32)
        extra = {"origin": tuple(h.start for h in halo)} if at_origin else {}
        proba = refiner.refine(im, sc, kind=kind, **extra)
        inner = tuple(slice(c.start - h.start, c.stop - h.start) for c, h in zip(core, halo))
        return core, np.asarray(proba[inner]).argmax(-1).astype(dtype)

    tiles = _tiles(spatial, tile_size, overlap)
    if n_jobs in (None, 1) or len(tiles) < 2:
        results = (run(core, halo) for core, halo in tiles)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(run)(core, halo) for core, halo in tiles)
    for core, labels in results:
        out[core] = labels
    return out
