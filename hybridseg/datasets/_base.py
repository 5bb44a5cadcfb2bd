"""Shared pieces of the loaders: the returned record, image reading, the data home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..utils._parallel import parallel_map  # noqa: F401  (re-exported to the loaders)

__all__ = ["Dataset", "clear_data_home", "get_data_home"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")


class Dataset(dict):
    """A small record of a labelled image collection, read by key or by attribute.

    Attributes
    ----------
    images : list of (H, W) or (H, W, C) ndarray of uint8
        The images.
    labels : list of (H, W) ndarray of uint8, or None
        Their label maps, ``ignore_index`` on void pixels (None for unlabelled folders).
    class_names : tuple of str
        The K class names; label ``k`` is ``class_names[k]``.
    ignore_index : int
        The void label.
    name : str
        The data set (and split) name.
    filenames : list of str
        The image file of each entry.
    colors : (K, 3) ndarray of uint8 or None
        A display colour per class.
    description : str
        Where the data comes from.
    """

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __dir__(self):
        return list(self.keys())

    def __repr__(self):
        n = len(self.get("images") or [])
        k = len(self.get("class_names") or [])
        return f"<Dataset {self.get('name')!r}: {n} images, {k} classes>"

    @property
    def n_classes(self):
        return len(self["class_names"])

    def __len__(self):
        return len(self["images"])


def get_data_home(data_home=None, *, create=True):
    """Folder where downloaded data sets are cached.

    Parameters
    ----------
    data_home : str or path-like, optional
        The folder. By default ``$HYBRIDSEG_DATA_HOME``, else ``~/hybridseg_data``.
    create : bool, default=True
        Create the folder if it is missing.

    Returns
    -------
    path : pathlib.Path
    """
    if data_home is None:
        data_home = os.environ.get("HYBRIDSEG_DATA_HOME", Path("~") / "hybridseg_data")
    path = Path(data_home).expanduser()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def clear_data_home(data_home=None):
    """Delete everything in the data home (see ``get_data_home``)."""
    shutil.rmtree(get_data_home(data_home, create=False), ignore_errors=True)


def read_image(path):
    """Read an image file as an ``(H, W)`` or ``(H, W, 3)`` uint8 array (alpha dropped).

    16-bit gray images stay uint16.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16)
            if im.mode in ("RGBA", "LA", "P", "CMYK", "YCbCr", "HSV"):
                im = im.convert("RGB")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:  # not an image, truncated, damaged
        raise ValueError(f"{path} cannot be read as an image: {exc}") from exc
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


def read_label_png(path):
    """Read a label image: palette and gray PNGs give their indices, RGB gives colours."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
            arr = np.asarray(im)
        else:
            arr = np.asarray(im.convert("RGB"))
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def compact_labels(arr):
    """Store labels as uint8 when they fit, else int32."""
    if arr.size and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8, copy=False)
    return arr.astype(np.int32, copy=False)


def check_limit(limit, name="limit"):
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"{name} must be a positive int or None, got {limit!r}")
    return int(limit)


def check_dir(path, what, expected=None):
    """``path`` as a Path, or FileNotFoundError naming ``what`` (and the ``expected``
    layout, when given)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        hint = f"; expected {expected}" if expected else ""
        raise FileNotFoundError(f"{what} {str(path)!r} is not a folder{hint}")
    return path
