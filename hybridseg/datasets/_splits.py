"""The train, val and test splits of each data set, defined once: ``hybridseg compare``,
the pipeline scripts and the benchmarks all read them through ``load_splits``."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import numpy as np

from ._base import Dataset, check_limit

__all__ = ["load_splits"]

#: ISBI 2012 slices of each split, ``[start, stop)``: contiguous blocks, as neighbouring
#: slices of the stack look alike.
ISBI_SPLITS = {"train": (0, 20), "val": (20, 25), "test": (25, 30)}
#: The embedded samples by data set name (``"sample"`` is the CamVid one).
SAMPLES = {"sample": "camvid", "sample:camvid": "camvid", "sample:membrane": "membrane"}
#: The field's benchmarks, read from the official layout under ``root``: their labelled
#: splits are train and val (test labels are withheld).
BENCHMARKS = ("voc", "cityscapes", "ade20k", "pascal_context", "coco_stuff")
#: Every data set ``load_splits`` knows by name (anything else is a folder).
NAMED_DATASETS = ("camvid", "isbi", *BENCHMARKS, *SAMPLES)

Splits = namedtuple("Splits", ["train", "val", "test"])
Splits.__doc__ = "The ``(train, val, test)`` Datasets of one data set."


def load_splits(name, root=None, *, limit_train=None, limit_test=None, seed=0,
                n_jobs=None):
    """Load the train, val and test splits of a data set.

    One definition of each split, shared by ``hybridseg compare``, the scripts in
    ``pipelines/`` and the benchmarks, so a figure from one is comparable with the others:

    - ``"camvid"``: the published SegNet split, as ``load_camvid`` reads it: 367 train,
      101 val and 233 test images (360x480, 11 classes). The val images come from
      another video than train and test.
    - ``"isbi"``: the 30 slices of the ISBI 2012 membrane stack cut in contiguous blocks,
      slices 0-19 train, 20-24 val, 25-29 test, since neighbouring slices look alike and
      interleaved splits would score on near copies of training slices. The test split is
      slices 25-29 so that a CRF stage can be tuned on held-out slices (val) that are not
      scored: this is the split ``hybridseg compare`` has used from the start, and the
      results in ``benchmarks/results/compare_isbi`` were made on it. A stack of fewer than
      30 slices is cut in about the same proportions (two thirds, one sixth, one sixth).
    - ``"voc"``, ``"cityscapes"``, ``"ade20k"``, ``"pascal_context"``, ``"coco_stuff"``:
      the benchmarks' official train and val splits from ``root`` (``load_voc``,
      ``load_cityscapes``, ``load_ade20k``, ``load_pascal_context``,
      ``load_coco_stuff``). Their test
      labels are withheld, so the official val is the test split here, as the field reports
      it, and a fifth of train (at least 1 image, at most 20), drawn with ``seed``, is set
      aside as val for tuning.
    - ``"sample"`` or ``"sample:camvid"``, ``"sample:membrane"``: the embedded samples
      (``load_sample``). Their images are marked train or test; having no val of their
      own, the last training image is set aside as val (4 + 2 CamVid images give 3 train,
      1 val, 2 test; 2 + 2 membrane crops give 1, 1, 2).
    - a folder: ``train/`` + ``trainannot/`` and ``test/`` + ``testannot/`` (optionally
      ``val/`` + ``valannot/``; SegNet's layout), or ``train/images/`` +
      ``train/labels/`` and so on; ``classes.txt`` there names the classes, one per line.
      Without val a fifth of train (at least 1 image, at most 20), drawn with ``seed``,
      is set aside as val.

    Scripts that tune nothing on val (the classical pipelines tune their CRF on the pixel
    classifier's out-of-fold unaries) fit on train and val together and score on test.

    Parameters
    ----------
    name : {"camvid", "isbi", "voc", "cityscapes", "ade20k", "pascal_context", \
"coco_stuff", "sample", "sample:camvid", "sample:membrane"} or path-like
        The data set, or a folder.
    root : str or path-like, optional
        Where CamVid lies (default: the copy ``fetch_camvid`` downloaded) or the ISBI
        stack (the folder with ``image/`` and ``label/``; needed for ``"isbi"``).
    limit_train, limit_test : int, optional
        Keep only the first images of train, of test (val is left whole).
    seed : int, default=0
        Seed of the draw of val from a folder that has none.
    n_jobs : int, optional
        Threads that decode images (joblib).

    Returns
    -------
    splits : (train, val, test) named tuple of Dataset
        Each a ``Dataset`` (``images``, ``labels``, ``filenames``), all three with the
        data set's ``class_names``, ``colors`` ((K, 3) uint8, or None for a folder without
        them), ``ignore_index`` and ``description``; ``name`` is ``<data set>-<split>``.

    Raises
    ------
    ValueError
        An unknown name that is no folder, ``"isbi"`` without ``root``, a folder without
        train and test splits, or a split left empty.

    Examples
    --------
    >>> from hybridseg.datasets import load_splits
    >>> train, val, test = load_splits("sample")
    >>> len(train), len(val), len(test), train.class_names[3]
    (3, 1, 2, 'road')
    """
    from ._camvid import load_camvid
    from ._folder import load_folder
    from ._isbi import load_isbi_membrane
    from ._sample import load_sample

    limit_train = check_limit(limit_train, "limit_train")
    limit_test = check_limit(limit_test, "limit_test")
    name = str(name)
    if name == "camvid":
        limits = {"train": limit_train, "val": None, "test": limit_test}
        parts = [load_camvid(root, s, limit=limits[s], n_jobs=n_jobs) for s in Splits._fields]
    elif name == "isbi":
        if root is None:
            raise ValueError("dataset 'isbi' needs root: the folder with image/ and label/ "
                             "(0.png ... 29.png)")
        data = load_isbi_membrane(root, n_jobs=n_jobs)
        n = len(data.images)
        a, b = (ISBI_SPLITS["val"] if n >= ISBI_SPLITS["test"][1]
                else (max(1, n * 2 // 3 - 1), max(2, n * 5 // 6)))
        parts = [_subset(data, range(0, a), "train"), _subset(data, range(a, b), "val"),
                 _subset(data, range(b, n), "test")]
    elif name in BENCHMARKS:
        from . import _benchmarks

        if root is None:
            raise ValueError(f"dataset {name!r} needs root: the data set's folder in its "
                             f"official layout (see hybridseg.datasets.load_{name})")
        loader = getattr(_benchmarks, f"load_{name}")
        train = loader(root, "train", n_jobs=n_jobs)
        test = loader(root, "val", limit=limit_test, n_jobs=n_jobs)
        train, val = _carve(train, seed)
        parts = [train, val, test]
    elif name in SAMPLES:
        data = load_sample(SAMPLES[name])
        train = [i for i, s in enumerate(data.split) if s == "train"]
        test = [i for i, s in enumerate(data.split) if s == "test"]
        parts = [_subset(data, train[:-1], "train"), _subset(data, train[-1:], "val"),
                 _subset(data, test, "test")]
    else:
        parts = _folder(name, load_folder, seed, n_jobs)
    train, val, test = parts
    if limit_train is not None:
        train = _subset(train, range(min(limit_train, len(train))))
    if limit_test is not None:
        test = _subset(test, range(min(limit_test, len(test))))
    splits = Splits(train, val, test)
    for split, d in zip(Splits._fields, splits):
        if not d.images:
            raise ValueError(f"the {split} split of {name!r} holds no images")
    return splits


def _subset(data, idx, split=None):
    """The images ``idx`` of ``data`` as a Dataset of their own, named ``<name>-<split>``."""
    idx = list(idx)
    out = Dataset({k: v for k, v in data.items() if k not in ("images", "labels",
                                                               "filenames", "split")})
    out.images = [data.images[i] for i in idx]
    out.labels = [data.labels[i] for i in idx]
    out.filenames = [str(data.filenames[i]) for i in idx]
    if split is not None:
        out.name = f"{data.name}-{split}"
    return out


def _folder_splits(root):
    """``{split: (images_dir, labels_dir)}`` of a data set folder, in either layout:
    ``train/`` + ``trainannot/`` (SegNet's), or ``train/images/`` + ``train/labels/``."""
    out = {}
    for split in Splits._fields:
        if (root / split / "images").is_dir() and (root / split / "labels").is_dir():
            out[split] = (root / split / "images", root / split / "labels")
        elif (root / split).is_dir() and (root / f"{split}annot").is_dir():
            out[split] = (root / split, root / f"{split}annot")
    if "train" not in out or "test" not in out:
        raise ValueError(
            f"dataset folder {root} needs train and test splits: train/ with trainannot/ "
            "(and test/, testannot/, optionally val/, valannot/), or train/images/ with "
            "train/labels/ and the same for test (and val)")
    return out


def _folder(name, load_folder, seed, n_jobs):
    """The splits of a data set folder, sharing the class names of the widest split."""
    root = Path(name)
    if not root.is_dir():
        raise ValueError(f"dataset must be 'camvid', 'isbi', 'sample' or a folder, "
                         f"got {name!r} (no such folder)")
    names_file = root / "classes.txt"
    class_names = ([ln.strip() for ln in names_file.read_text().splitlines()
                    if ln.strip()] if names_file.is_file() else None)
    parts = {s: load_folder(i, lab, class_names=class_names, recursive=True, n_jobs=n_jobs,
                            name=f"{root.name}-{s}")
             for s, (i, lab) in _folder_splits(root).items()}
    k = max(d.n_classes for d in parts.values())
    meta = parts["train"] if parts["train"].n_classes == k else parts["test"]
    for d in parts.values():
        d.class_names, d.colors = meta.class_names, meta.get("colors")
    if "val" not in parts:
        parts["train"], parts["val"] = _carve(parts["train"], seed)
    return [parts[s] for s in Splits._fields]


def _carve(train, seed):
    """Split a validation set from a training set that has none: a fifth of it (at least
    one image, at most 20), drawn with ``seed``."""
    if len(train.images) < 2:
        raise ValueError("the training split needs at least 2 images to set one aside "
                         "for validation")
    order = np.random.default_rng(seed).permutation(len(train.images))
    n_val = min(max(1, len(train.images) // 5), 20)
    val = _subset(train, sorted(order[:n_val]))
    val.name = train.name.removesuffix("-train") + "-val"
    return _subset(train, sorted(order[n_val:])), val
