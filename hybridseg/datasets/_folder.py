"""Any folder of images, with label maps in a paired folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._base import (
    IMAGE_EXTENSIONS,
    Dataset,
    check_dir,
    check_limit,
    compact_labels,
    parallel_map,
    read_image,
    read_label_png,
)

__all__ = ["load_folder"]


def _list_images(folder, recursive):
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _colormap_lookup(colormap):
    """``(colours (M, 3) int64, classes (M,) int64)`` from a dict or a (K, 3) array."""
    if isinstance(colormap, dict):
        colours = np.array([tuple(c) for c in colormap], dtype=np.int64)
        classes = np.array([int(v) for v in colormap.values()], dtype=np.int64)
    else:
        colours = np.asarray(colormap, dtype=np.int64)
        classes = np.arange(len(colours), dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(
            "colormap must be a dict {(r, g, b): class} or a (K, 3) array of colours, got "
            f"shape {colours.shape}"
        )
    if ((colours < 0) | (colours > 255)).any():
        raise ValueError("colormap colours must be in 0..255")
    codes = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    if np.unique(codes).size != codes.size:
        raise ValueError("colormap gives the same colour twice")
    order = np.argsort(codes)
    return codes[order], classes[order]


def _decode_colours(rgb, codes, classes, unknown, ignore_index, path):
    if rgb.ndim != 3:
        raise ValueError(f"{path}: a colormap was given but the label image is not RGB")
    c = rgb.astype(np.int64)
    key = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    pos = np.clip(np.searchsorted(codes, key), 0, codes.size - 1)
    found = codes[pos] == key
    out = np.where(found, classes[pos], ignore_index)
    if not found.all() and unknown == "error":
        bad = np.unique(key[~found])[:5]
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in bad)
        raise ValueError(
            f"{path}: colours {shown} are not in the colormap; pass "
            "unknown_color='ignore' to map them to ignore_index"
        )
    return out


def load_folder(
    images_dir,
    labels_dir=None,
    *,
    class_names=None,
    colormap=None,
    unknown_color="error",
    label_suffix="",
    ignore_index=255,
    recursive=False,
    limit=None,
    n_jobs=None,
    name=None,
):
    """Load images from a folder, and label maps from a paired folder.

    Each image ``<images_dir>/<rel>/<stem>.<ext>`` is paired with the label file
    ``<labels_dir>/<rel>/<stem><label_suffix>.<any image ext>`` (PNG preferred).

    Parameters
    ----------
    images_dir : str or path-like
        Folder of images (PNG, JPEG, BMP, TIFF, PPM/PGM).
    labels_dir : str or path-like, optional
        Folder of label images; omit for unlabelled images (``labels`` is then None).
    class_names : sequence of str, optional
        The class names; by default ``"0"`` ... ``"K-1"`` for the largest label seen.
    colormap : dict or (K, 3) array_like, optional
        For colour-coded labels: ``{(r, g, b): class}`` (a colour may map to
        ``ignore_index``), or one colour per class (row ``k`` is class ``k``). Without it,
        label files must be single-channel (gray or palette PNG) holding class ids.
    unknown_color : {"error", "ignore"}, default="error"
        What to do with a colour absent from ``colormap``: raise, or map it to
        ``ignore_index``.
    label_suffix : str, default=""
        Appended to the image's stem to name its label file (e.g. ``"_L"`` for CamVid's
        original colour labels).
    ignore_index : int, default=255
        The void label.
    recursive : bool, default=False
        Search sub-folders too.
    limit : int, optional
        Load only the first ``limit`` images (sorted by path).
    n_jobs : int, optional
        Threads that decode images (joblib).
    name : str, optional
        The record's name; default the folder's name.

    Returns
    -------
    data : Dataset
    """
    if unknown_color not in ("error", "ignore"):
        raise ValueError(f"unknown_color must be 'error' or 'ignore', got {unknown_color!r}")
    limit = check_limit(limit)
    images_dir = check_dir(images_dir, "images_dir")
    paths = _list_images(images_dir, recursive)
    if not paths:
        raise FileNotFoundError(f"no images found in {images_dir}")
    if limit is not None:
        paths = paths[:limit]
    label_paths = None
    if labels_dir is not None:
        labels_dir = check_dir(labels_dir, "labels_dir")
        label_paths = []
        for p in paths:
            rel = p.relative_to(images_dir)
            stem = labels_dir / rel.parent / f"{rel.stem}{label_suffix}"
            candidates = [stem.with_name(stem.name + ext) for ext in IMAGE_EXTENSIONS]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise FileNotFoundError(
                    f"image {p} has no label file {stem}.png (or another image extension)"
                )
            label_paths.append(found)
    lookup = None if colormap is None else _colormap_lookup(colormap)

    def read_label(path):
        lab = read_label_png(path)
        if lookup is not None:
            lab = _decode_colours(lab, *lookup, unknown_color, ignore_index, path)
        elif lab.ndim != 2:
            raise ValueError(
                f"{path}: label image has {lab.shape[2]} channels; pass a colormap for "
                "colour-coded labels"
            )
        return compact_labels(lab)

    images = parallel_map(read_image, paths, n_jobs)
    labels = None
    if label_paths is not None:
        labels = parallel_map(read_label, label_paths, n_jobs)
        for p, im, lab in zip(paths, images, labels):
            if im.shape[:2] != lab.shape:
                raise ValueError(
                    f"image {p} is {im.shape[:2]} but its label map is {lab.shape}"
                )
    if class_names is None:
        top = -1
        if lookup is not None:
            # The colour map declares the classes, seen in these files or not.
            declared = lookup[1][lookup[1] != ignore_index]
            top = int(declared.max()) if declared.size else -1
        if labels is not None:
            for lab in labels:
                valid = lab[lab != ignore_index]
                if valid.size:
                    top = max(top, int(valid.max()))
        class_names = tuple(str(i) for i in range(top + 1))
    else:
        class_names = tuple(str(c) for c in class_names)
        if labels is not None:
            for p, lab in zip(label_paths, labels):
                bad = (lab >= len(class_names)) & (lab != ignore_index)
                if bad.any():
                    raise ValueError(
                        f"{p}: labels {np.unique(lab[bad])[:5]} outside the "
                        f"{len(class_names)} classes named"
                    )
    colors = None
    if lookup is not None:
        # One display colour per class, where the colour map gives each class exactly one.
        codes, classes = lookup
        k = len(class_names)
        if all(np.sum(classes == c) == 1 for c in range(k)):
            colors = np.zeros((k, 3), np.uint8)
            for code, c in zip(codes, classes):
                if 0 <= c < k:
                    colors[c] = [code >> 16, (code >> 8) & 255, code & 255]
    return Dataset(
        images=images,
        labels=labels,
        class_names=class_names,
        ignore_index=ignore_index,
        name=name or Path(images_dir).name,
        filenames=[str(p) for p in paths],
        colors=colors,
        description=f"images from {images_dir}"
        + ("" if labels_dir is None else f", labels from {labels_dir}"),
    )
