"""The ISBI 2012 electron-microscopy membrane segmentation stack (training part)."""

from __future__ import annotations

import re

import numpy as np

from ._base import Dataset, check_dir, check_limit, parallel_map, read_image, read_label_png

__all__ = ["ISBI_CLASSES", "load_isbi_membrane"]

ISBI_CLASSES = ("membrane", "cell")
ISBI_COLORS = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
ISBI_DESCRIPTION = (
    "ISBI 2012 EM segmentation challenge, training stack: 30 serial-section TEM images "
    "(512x512, gray) of the Drosophila ventral nerve cord with membrane / cell-interior "
    "labels (Cardona et al. 2010; Arganda-Carreras et al. 2015), as exported to PNG in "
    "github.com/zhixuhao/unet (data/membrane/train)."
)


def _numeric_key(path):
    m = re.match(r"(\d+)", path.stem)
    return (int(m.group(1)) if m else float("inf"), path.name)


def _read_isbi_label(path):
    lab = read_label_png(path)
    if lab.ndim == 3:
        lab = lab[..., 0]
    # 255 = cell interior, 0 = membrane; threshold at mid-gray in case a tool interpolated.
    return (lab >= 128).astype(np.uint8)


def load_isbi_membrane(root, *, limit=None, n_jobs=None, return_X_y=False):
    """Load the ISBI 2012 membrane stack: 30 gray 512x512 images, 2 classes.

    Parameters
    ----------
    root : str or path-like
        Folder with ``image/`` and ``label/`` holding ``0.png`` ... ``29.png``.
    limit : int, optional
        Load only the first ``limit`` slices.
    n_jobs : int, optional
        Threads that decode images (joblib).
    return_X_y : bool, default=False
        Return ``(images, labels)`` instead of the record.

    Returns
    -------
    data : Dataset
        ``images``: list of (512, 512) uint8; ``labels``: list of (512, 512) uint8 with
        0 = membrane, 1 = cell interior (no void pixels); ``class_names`` =
        ``("membrane", "cell")``.
    """
    limit = check_limit(limit)
    root = check_dir(root, "ISBI membrane root")
    img_dir = check_dir(root / "image", "ISBI image folder")
    lab_dir = check_dir(root / "label", "ISBI label folder")
    paths = sorted(img_dir.glob("*.png"), key=_numeric_key)
    if not paths:
        raise FileNotFoundError(f"no PNG images in {img_dir}")
    if limit is not None:
        paths = paths[:limit]
    pairs = []
    for p in paths:
        lab = lab_dir / p.name
        if not lab.is_file():
            raise FileNotFoundError(f"ISBI image {p} has no label file {lab}")
        pairs.append((p, lab))
    loaded = parallel_map(lambda pl: (read_image(pl[0]), _read_isbi_label(pl[1])), pairs, n_jobs)
    images = [im if im.ndim == 2 else im[..., 0] for im, _ in loaded]
    labels = [lab for _, lab in loaded]
    if return_X_y:
        return images, labels
    return Dataset(
        images=images,
        labels=labels,
        class_names=ISBI_CLASSES,
        ignore_index=255,
        name="isbi2012_membrane",
        filenames=[str(p) for p, _ in pairs],
        colors=ISBI_COLORS.copy(),
        description=ISBI_DESCRIPTION,
    )
