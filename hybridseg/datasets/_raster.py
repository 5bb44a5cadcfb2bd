"""``open_raster``: a large image on disk (TIFF, BigTIFF, OME-TIFF, zarr) read by windows,
so that ``refine_tiles`` and ``segment`` never hold it whole."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["RASTER_SUFFIXES", "TIFF_SUFFIXES", "Raster", "is_zarr_path", "open_raster",
           "raster_shape", "read_raster"]

#: Files read by windows (every other image is read whole through Pillow).
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
RASTER_SUFFIXES = (*TIFF_SUFFIXES, ".zarr")
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
_NEEDS = "reading {what} by windows needs {pkg}: pip install 'hybridseg[raster]'"


def is_zarr_path(path):
    """Whether ``path`` is a zarr store (a folder holding zarr's metadata)."""
    path = os.fspath(path)
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, m)) for m in _ZARR_MARKERS)


class Raster:
    """A 2-D image on disk, read by windows: ``raster[y0:y1, x0:x1]`` is an ``(h, w)`` or
    ``(h, w, C)`` ndarray, the channels last whatever the file's layout.

    Attributes
    ----------
    path : str
    shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``.
    dtype : numpy.dtype
    ndim : int
    """

    def __init__(self, path, array, order, close=None, lut=None):
        self.path = os.fspath(path)
        self._array, self._order, self._close, self._lut = array, order, close, lut
        full = tuple(int(n) for n in array.shape)
        self.shape = tuple(full[i] for i in order)
        self._alpha = len(self.shape) == 3 and self.shape[2] == 4  # RGBA: alpha dropped
        if self._alpha:
            self.shape = (*self.shape[:2], 3)
        if lut is not None:  # a palette image: its indices' colours
            self.shape = (*self.shape[:2], 3)
        self.dtype = np.dtype(array.dtype if lut is None else lut.dtype)
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"Raster({self.path!r}, shape={self.shape}, dtype={self.dtype.name})"

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim or not all(isinstance(k, slice) for k in key):
            raise IndexError(f"a Raster reads windows: up to {self.ndim} slices, got {key!r}")
        key = key + (slice(None),) * (self.ndim - len(key))
        if self._lut is not None:
            return np.ascontiguousarray(self._lut[self._read(key[:2])][..., key[2]])
        return self._read(key)

    def _read(self, key):
        file_key = [slice(None)] * len(self._array.shape)
        for axis, k in zip(self._order, key):
            file_key[axis] = k
        for axis in range(len(file_key)):  # the file's singleton axes (T, Z, ...)
            if axis not in self._order:
                file_key[axis] = 0
        if self._alpha:  # the file's channel slice covers its 4 channels, alpha last
            file_key[self._order[2]] = slice(*key[2].indices(3))
        window = np.asarray(self._array[tuple(file_key)])
        return _channels_last(window, self._order, len(file_key))

    def __array__(self, dtype=None, copy=None):
        whole = self[(slice(None),) * self.ndim]
        return whole if dtype is None else whole.astype(dtype)

    def close(self):
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _channels_last(array, order, ndim):
    """``array`` (the file's axes, singleton ones taken out) as ``(Y, X[, C])``."""
    kept = [a for a in range(ndim) if a in order]
    return np.ascontiguousarray(np.moveaxis(
        array, [kept.index(a) for a in order], range(len(order))))


def _order(axes, shape, path):
    """The file's axes that give ``(Y, X[, C])``; the others must have length 1."""
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"{path} has axes {axes!r}: a 2-D raster needs Y and X")
    channel = [axes.index(a) for a in "SC" if a in axes and shape[axes.index(a)] > 1]
    if len(channel) > 1:
        raise ValueError(f"{path} has two channel axes ({axes!r}, shape {shape})")
    order = [axes.index("Y"), axes.index("X"), *channel]
    extra = [f"{a}={n}" for i, (a, n) in enumerate(zip(axes, shape))
             if i not in order and n > 1]
    if extra:
        raise ValueError(f"{path} is a stack ({', '.join(extra)}; axes {axes!r}, shape "
                         f"{shape}): segment reads one 2-D image per file")
    return order


def _tiff(path):
    try:
        import tifffile
    except ImportError as exc:
        raise ImportError(_NEEDS.format(what="TIFF", pkg="tifffile")) from exc
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises its own TiffFileError, struct errors, ...
        raise ValueError(f"{path} is not a TIFF that tifffile can read: {exc}") from exc
    try:
        series = tif.series[0]
        return tif, series, _order(series.axes, series.shape, path)
    except BaseException:
        tif.close()
        raise


def _photometric(series):
    return getattr(getattr(series.keyframe, "photometric", None), "name", "MINISBLACK")


def _open_tiff(path):
    tif, series, order = _tiff(path)
    try:
        photometric, lut = _photometric(series), None
        if photometric == "PALETTE":
            colormap = np.asarray(series.keyframe.colormap)  # (3, 2**bits) of uint16
            lut = np.ascontiguousarray((colormap.T >> 8).astype(np.uint8))
        elif photometric not in ("MINISBLACK", "RGB"):
            raise ValueError(f"{path} is a {photometric} TIFF: windows are read from gray, "
                             "RGB and palette TIFFs; convert it to RGB first")
        try:
            import zarr
        except ImportError as exc:
            raise ImportError(_NEEDS.format(what="TIFF", pkg="zarr")) from exc
        array = zarr.open(series.aszarr(level=0), mode="r")
    except BaseException:
        tif.close()
        raise
    return Raster(path, array, order, close=tif.close, lut=lut)


def _ngff_axes(group):
    attrs = dict(group.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        return None, None
    ms = multiscales[0]
    axes = ms.get("axes")
    names = "".join((a["name"] if isinstance(a, dict) else a)[0] for a in axes) if axes else None
    return ms["datasets"][0]["path"], names


def _open_zarr(path):
    try:
        import zarr
    except ImportError as exc:
        raise ImportError(_NEEDS.format(what="zarr", pkg="zarr")) from exc
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:
        raise ValueError(f"{path} is not a zarr store that zarr can read: {exc}") from exc
    axes = None
    if not hasattr(node, "shape"):  # a group: OME-Zarr's first scale, or its one array
        key, axes = _ngff_axes(node)
        if key is None:
            arrays = sorted(name for name, _ in node.arrays())
            if len(arrays) != 1:
                raise ValueError(f"{path} is a zarr group with arrays {arrays}: give the "
                                 "path of the one array to read")
            key = arrays[0]
        node = node[key]
    shape = tuple(node.shape)
    if axes is None:
        if len(shape) == 2:
            axes = "YX"
        elif len(shape) == 3 and shape[-1] <= 4:
            axes = "YXC"
        elif len(shape) == 3 and shape[0] <= 4:
            axes = "CYX"
        else:
            raise ValueError(f"{path} holds an array of shape {shape}: a 2-D raster is "
                             "(H, W), (H, W, C) or (C, H, W) with at most 4 channels")
    return Raster(path, node, _order(axes, shape, path))


def open_raster(path):
    """Open a large image for reading by windows, without reading it.

    Parameters
    ----------
    path : str or path-like
        A TIFF, BigTIFF or OME-TIFF file (its first series, full resolution; tiled or
        stripped, any compression tifffile decodes), or a zarr store (an array, or an
        OME-Zarr group's first scale). Any other image file is read whole by Pillow.

    Returns
    -------
    raster : Raster or ndarray
        ``raster.shape`` is ``(H, W)`` or ``(H, W, C)`` and ``raster[y0:y1, x0:x1]`` reads
        one window (channels last); an ndarray for a file Pillow reads whole. A Raster
        keeps its file open until ``raster.close()`` (or the end of a ``with`` block).

    Raises
    ------
    ValueError
        The file is not a raster (or not a 2-D one: a time series or a z-stack).
    ImportError
        tifffile or zarr is missing (``pip install 'hybridseg[raster]'``).

    Examples
    --------
    >>> from hybridseg.datasets import open_raster
    >>> with open_raster("slide.ome.tif") as raster:  # doctest: +SKIP
    ...     window = raster[10_000:11_024, 20_000:21_024]  # (1024, 1024, 3)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    if is_zarr_path(path) or path.lower().rstrip(os.sep).endswith(".zarr"):
        return _open_zarr(path)
    if path.lower().endswith(RASTER_SUFFIXES):
        return _open_tiff(path)
    from ._base import read_image

    return read_image(path)


def read_raster(path):
    """A whole image as ``(H, W)`` or ``(H, W, C)`` (alpha dropped): TIFF files through
    tifffile (a stack is refused instead of read as its first page), zarr stores through
    zarr, other images through Pillow."""
    path = os.fspath(path)
    if path.lower().endswith(TIFF_SUFFIXES) and not os.path.isdir(path):
        try:
            tif, series, order = _tiff(path)
        except ImportError:  # without tifffile, Pillow reads the first page
            from ._base import read_image

            return read_image(path)
        with tif:
            if _photometric(series) not in ("MINISBLACK", "RGB"):  # palette, CMYK, ...
                from ._base import read_image

                return read_image(path)  # Pillow converts them to RGB
            try:
                array = series.asarray()
            except Exception as exc:
                raise ValueError(f"{path} cannot be read as an image: {exc}") from exc
        squeezed = array[tuple(slice(None) if a in order else 0 for a in range(array.ndim))]
        array = _channels_last(squeezed, order, array.ndim)
        return array[..., :3] if array.ndim == 3 and array.shape[2] == 4 else array
    raster = open_raster(path)
    if isinstance(raster, Raster):
        with raster:
            return np.asarray(raster)
    return raster


def raster_shape(path):
    """``(H, W[, C])`` of an image file or a zarr store, from its header only."""
    path = os.fspath(path)
    if is_zarr_path(path) or path.lower().endswith(RASTER_SUFFIXES):
        with open_raster(path) as raster:
            return raster.shape
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            bands = len(im.getbands())
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as an image: {exc}") from exc
    return (h, w) if bands == 1 else (h, w, 3)
