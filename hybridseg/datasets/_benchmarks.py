"""Loaders of the field's benchmark data sets, read from their official layouts: PASCAL VOC
2012 (with SBD's augmented training set), Cityscapes, ADE20K (SceneParsing), PASCAL-Context
(59 classes) and COCO-Stuff 164k (171 classes).

Each returns the record ``load_camvid`` returns: ``images``, ``labels`` (uint8, void
255), ``class_names``, ``ignore_index``, ``name``, ``filenames``, ``colors``,
``description``. ``fetch_dataset`` (``_fetch.py``) downloads those whose terms allow a
direct download; Cityscapes needs a login. The error for a missing or misplaced tree names
the layout expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils._parallel import parallel_map
from ._base import Dataset, check_dir, check_limit, read_image, read_label_png

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus",
    "train", "motorcycle", "bicycle",
)
#: Cityscapes ``labelIds`` of the 19 evaluated classes, in train-id order.
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31,
                        32, 33)
_CITYSCAPES_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea",
    "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe",
    "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike",
    "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)


def voc_colormap(n=256):
    """The PASCAL VOC colour map: ``(n, 3)`` uint8, colour ``i`` from the bits of ``i``."""
    out = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - j)
            c >>= 3
        out[i] = rgb
    return out


def _spread_colors(k, seed):
    """``k`` distinct colours for classes without official ones."""
    rng = np.random.default_rng(seed)
    return rng.integers(40, 256, (k, 3)).astype(np.uint8)


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got "
                         f"{value!r}")
    return value


def _checked_labels(lab, path, n_classes, void_values=(255,)):
    """``lab`` as uint8 with every value a class id or void, else a ValueError naming
    the file and the stray values."""
    ok = lab < n_classes
    for v in void_values:
        ok |= lab == v
    if not ok.all():
        stray = np.unique(lab[~ok])[:8]
        raise ValueError(f"{path} holds labels {', '.join(map(str, stray))}: expected class "
                         f"ids 0..{n_classes - 1} and void 255")
    return lab.astype(np.uint8)


def _record(pairs, read, limit, n_jobs, return_X_y, **meta):
    if not pairs:
        raise FileNotFoundError(f"no images found for {meta['name']}")
    if limit is not None:
        pairs = pairs[:limit]
    loaded = parallel_map(lambda pl: (read_image(pl[0]), read(pl[1])), pairs, n_jobs)
    images = [im for im, _ in loaded]
    labels = [lab for _, lab in loaded]
    for (img_path, _), im, lab in zip(pairs, images, labels):
        if im.shape[:2] != lab.shape:
            raise ValueError(f"{img_path} is {im.shape[:2]} but its label map is "
                             f"{lab.shape}")
    if return_X_y:
        return images, labels
    return Dataset(images=images, labels=labels, ignore_index=255,
                   filenames=[str(p) for p, _ in pairs], **meta)


# --------------------------------------------------------------------------- VOC
def _read_voc_label(path):
    lab = read_label_png(path)
    if lab.ndim != 2:
        raise ValueError(f"{path} is an RGB image: VOC's SegmentationClass PNGs are palette "
                         "images whose indices are the class ids (use the official files)")
    return _checked_labels(lab, path, len(VOC_CLASSES))


def _read_sbd_label(path):
    from scipy.io import loadmat

    try:
        seg = loadmat(path)["GTcls"]["Segmentation"][0, 0]
    except (KeyError, IndexError, ValueError, OSError) as exc:
        raise ValueError(f"{path} is not an SBD cls file (GTcls.Segmentation): "
                         f"{exc}") from exc
    return _checked_labels(np.asarray(seg), path, len(VOC_CLASSES))


def _ids(path):
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def load_voc(root, split="train", *, sbd_root=None, limit=None, n_jobs=None,
             return_X_y=False):
    """Load PASCAL VOC 2012 segmentation (21 classes) from the official archive's layout.

    Parameters
    ----------
    root : str or path-like
        The ``VOC2012`` folder (``VOCdevkit/VOC2012``) with ``JPEGImages/``,
        ``SegmentationClass/`` (palette PNGs: the indices are the class ids, 255 the void
        borders) and ``ImageSets/Segmentation/{train,val,trainval}.txt``.
    split : {"train", "val", "trainval", "train_aug"}, default="train"
        ``"train_aug"``: the 10,582-image augmented training set of the literature, VOC's
        train with SBD's train and val images that are not in VOC's val (labels from
        ``SegmentationClass`` where VOC has them, else SBD's ``cls/<id>.mat``).
    sbd_root : str or path-like, optional
        SBD's ``dataset`` folder (``cls/``, ``train.txt``, ``val.txt``), for
        ``"train_aug"``.
    limit, n_jobs, return_X_y
        As in ``load_camvid``.

    Returns
    -------
    data : Dataset
        ``labels`` uint8 with ids 0..20 and 255 void.
    """
    _check_choice(split, "split", ("train", "val", "trainval", "train_aug"))
    limit = check_limit(limit)
    expected = "the VOC2012 folder of the official archive (JPEGImages/, SegmentationClass/, "
    expected += "ImageSets/Segmentation/)"
    root = check_dir(root, "VOC root", expected)
    images = check_dir(root / "JPEGImages", "VOC folder", expected)
    classes = check_dir(root / "SegmentationClass", "VOC folder", expected)
    sets = check_dir(root / "ImageSets" / "Segmentation", "VOC folder", expected)
    pairs = []
    if split == "train_aug":
        if sbd_root is None:
            raise ValueError("split='train_aug' needs sbd_root, SBD's dataset folder "
                             "(cls/, train.txt, val.txt)")
        sbd = check_dir(sbd_root, "SBD root", "SBD's dataset folder (cls/, train.txt, "
                          "val.txt)")
        val = set(_ids(sets / "val.txt"))
        ids = list(dict.fromkeys(_ids(sets / "train.txt") + _ids(sbd / "train.txt")
                                 + _ids(sbd / "val.txt")))
        ids = [i for i in ids if i not in val]
        for i in sorted(ids):
            voc_png = classes / f"{i}.png"
            pairs.append((images / f"{i}.jpg",
                          voc_png if voc_png.is_file() else sbd / "cls" / f"{i}.mat"))
    else:
        listing = sets / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"VOC split file {str(listing)!r} is missing; expected "
                                    + expected)
        pairs = [(images / f"{i}.jpg", classes / f"{i}.png") for i in _ids(listing)]
    for img, lab in pairs:
        if not img.is_file() or not lab.is_file():
            missing = img if not img.is_file() else lab
            raise FileNotFoundError(f"VOC {split} lists {img.stem} but {missing} is missing")

    def read(path):
        return _read_sbd_label(path) if path.suffix == ".mat" else _read_voc_label(path)

    return _record(pairs, read, limit, n_jobs, return_X_y, class_names=VOC_CLASSES,
                   name=f"voc-{split}", colors=voc_colormap(len(VOC_CLASSES)),
                   description="PASCAL VOC 2012 segmentation: 20 object classes and "
                   "background; 255 marks the void borders")


# --------------------------------------------------------------------------- Cityscapes
_ID_TO_TRAIN = np.full(256, 255, np.uint8)
_ID_TO_TRAIN[list(CITYSCAPES_LABEL_IDS)] = np.arange(len(CITYSCAPES_LABEL_IDS))


def _read_cityscapes_label(path):
    lab = read_label_png(path)
    if lab.ndim != 2 or lab.dtype not in (np.uint8, np.uint16, np.int32):
        raise ValueError(f"{path} is not a labelIds image (one channel of label ids)")
    if lab.size and lab.max() > 255:
        lab = np.where(lab > 255, 0, lab)  # no Cityscapes id is above 33
    return _ID_TO_TRAIN[lab.astype(np.uint8)]


def load_cityscapes(root, split="train", *, limit=None, n_jobs=None, return_X_y=False):
    """Load Cityscapes (fine annotations, the 19 evaluated classes).

    Cityscapes is downloaded by hand after logging in at cityscapes-dataset.com
    (``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``, unpacked in one
    folder): its licence does not allow a download without an account.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
        ``gtFine/<split>/<city>/*_gtFine_labelIds.png``.
    split : {"train", "val", "test"}, default="train"
        The test split's annotations are withheld (all void).
    limit, n_jobs, return_X_y
        As in ``load_camvid``.

    Returns
    -------
    data : Dataset
        ``labels`` uint8: ``labelIds`` mapped to the 19 train ids, every other id void
        (255).
    """
    _check_choice(split, "split", ("train", "val", "test"))
    limit = check_limit(limit)
    expected = ("a folder with leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
                "gtFine/<split>/<city>/*_gtFine_labelIds.png (download by hand after logging "
                "in at https://www.cityscapes-dataset.com)")
    root = check_dir(root, "Cityscapes root", expected)
    img_root = check_dir(root / "leftImg8bit" / split, "Cityscapes folder", expected)
    gt_root = check_dir(root / "gtFine" / split, "Cityscapes folder", expected)
    pairs = []
    for img in sorted(img_root.glob("*/*_leftImg8bit.png")):
        stem = img.name[: -len("_leftImg8bit.png")]
        lab = gt_root / img.parent.name / f"{stem}_gtFine_labelIds.png"
        if not lab.is_file():
            raise FileNotFoundError(f"Cityscapes image {img} has no label file {lab}")
        pairs.append((img, lab))
    return _record(pairs, _read_cityscapes_label, limit, n_jobs, return_X_y,
                   class_names=CITYSCAPES_CLASSES, name=f"cityscapes-{split}",
                   colors=np.array(_CITYSCAPES_COLORS, np.uint8),
                   description="Cityscapes, fine annotations: 19 classes of urban street "
                   "scenes (train ids); other labelIds are void")


# --------------------------------------------------------------------------- ADE20K
def _images_and_annotations(root, folder, what, expected):
    """``(image, annotation)`` pairs of ``root/images/<folder>/*.jpg`` and
    ``root/annotations/<folder>/<stem>.png`` (ADE20K's and COCO-Stuff's layout)."""
    root = check_dir(root, f"{what} root", expected)
    img_dir = check_dir(root / "images" / folder, f"{what} folder", expected)
    ann_dir = check_dir(root / "annotations" / folder, f"{what} folder", expected)
    pairs = []
    for img in sorted(img_dir.glob("*.jpg")):
        lab = ann_dir / f"{img.stem}.png"
        if not lab.is_file():
            raise FileNotFoundError(f"{what} image {img} has no annotation {lab}")
        pairs.append((img, lab))
    return pairs


def _read_ade_label(path):
    lab = read_label_png(path)
    if lab.ndim != 2:
        raise ValueError(f"{path} is not a one-channel annotation of class ids")
    lab = _checked_labels(lab, path, len(ADE20K_CLASSES) + 1, void_values=())
    out = lab.astype(np.int16) - 1  # 0 "other" is void; k -> k - 1
    return np.where(out < 0, 255, out).astype(np.uint8)


def load_ade20k(root, split="train", *, limit=None, n_jobs=None, return_X_y=False):
    """Load ADE20K as in the SceneParsing benchmark (150 classes).

    Parameters
    ----------
    root : str or path-like
        ``ADEChallengeData2016``: ``images/`` and ``annotations/``, each with
        ``training/`` and ``validation/``.
    split : {"train", "val"}, default="train"
    limit, n_jobs, return_X_y
        As in ``load_camvid``.

    Returns
    -------
    data : Dataset
        ``labels`` uint8: annotation ``k`` (1..150) becomes class ``k - 1``, 0 ("other")
        void (255).
    """
    _check_choice(split, "split", ("train", "val"))
    limit = check_limit(limit)
    expected = ("ADEChallengeData2016 with images/ and annotations/, each holding "
                "training/ and validation/")
    folder = {"train": "training", "val": "validation"}[split]
    pairs = _images_and_annotations(root, folder, "ADE20K", expected)
    return _record(pairs, _read_ade_label, limit, n_jobs, return_X_y,
                   class_names=ADE20K_CLASSES, name=f"ade20k-{split}",
                   colors=_spread_colors(len(ADE20K_CLASSES), 150),
                   description="ADE20K SceneParsing: 150 classes of scenes and objects; "
                   "'other' is void")


# --------------------------------------------------------------------------- PASCAL-Context
PASCAL_CONTEXT_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck",
    "tvmonitor", "wall", "water", "window", "wood",
)


def _read_context_png(path):
    lab = read_label_png(path)
    if lab.ndim != 2:
        raise ValueError(f"{path} is not a one-channel map of PASCAL-Context ids 0..59")
    lab = _checked_labels(lab, path, len(PASCAL_CONTEXT_CLASSES) + 1)
    out = lab.astype(np.int16) - 1  # 0 (background: none of the 59) is void; k -> k - 1
    return np.where((out < 0) | (lab == 255), 255, out).astype(np.uint8)


def _context_lookup(labels_txt):
    """The release's 459 ids (``labels.txt``: ``"<id>: <name>"`` lines) mapped to the 59
    classes (by name), every other id to void."""
    lookup = np.full(65536, 255, np.uint8)
    index = {name: i for i, name in enumerate(PASCAL_CONTEXT_CLASSES)}
    for line in Path(labels_txt).read_text().splitlines():
        key, _, name = line.partition(":")
        if key.strip().isdigit() and name.strip() in index:
            lookup[int(key)] = index[name.strip()]
    if (lookup != 255).sum() != len(PASCAL_CONTEXT_CLASSES):
        raise ValueError(f"{labels_txt} does not name the 59 PASCAL-Context classes "
                         "(expected lines '<id>: <name>' of the 459-class release)")
    return lookup


def load_pascal_context(root, split="train", *, limit=None, n_jobs=None, return_X_y=False):
    """Load PASCAL-Context (59 classes: the most frequent of its 459, the rest void).

    Parameters
    ----------
    root : str or path-like
        The ``VOC2010`` folder of ``VOCtrainval_03-May-2010.tar`` (``JPEGImages/``) with
        the context labels in either form:

        - ``SegmentationClassContext/<id>.png`` with ids 0..59 (0: none of the 59) and
          ``ImageSets/SegmentationContext/{train,val}.txt``: the layout of the Detail
          API's conversion that MMSegmentation and others read;
        - the release's ``trainval/<id>.mat`` (``LabelMap`` of the 459 classes) with its
          ``labels.txt``, the splits from ``ImageSets/SegmentationContext/`` or else
          VOC 2010's ``ImageSets/Main/{train,val}.txt`` (4,998 and 5,105 images).
    split : {"train", "val"}, default="train"
    limit, n_jobs, return_X_y
        As in ``load_camvid``.

    Returns
    -------
    data : Dataset
        ``labels`` uint8 with ids 0..58 and 255 void.
    """
    _check_choice(split, "split", ("train", "val"))
    limit = check_limit(limit)
    expected = ("the VOC2010 folder with JPEGImages/ and either SegmentationClassContext/ "
                "(PNG ids 0..59) with ImageSets/SegmentationContext/, or the release's "
                "trainval/*.mat with labels.txt")
    root = check_dir(root, "PASCAL-Context root", expected)
    images = check_dir(root / "JPEGImages", "PASCAL-Context folder", expected)
    pngs, mats = root / "SegmentationClassContext", root / "trainval"
    listing = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
    if pngs.is_dir():
        read, folder, suffix = _read_context_png, pngs, ".png"
    elif mats.is_dir() and (root / "labels.txt").is_file():
        from scipy.io import loadmat

        lookup = _context_lookup(root / "labels.txt")

        def read(path):
            try:
                ids = np.asarray(loadmat(path)["LabelMap"])
            except (KeyError, ValueError, OSError) as exc:
                raise ValueError(f"{path} is not a PASCAL-Context label file (LabelMap): "
                                 f"{exc}") from exc
            return lookup[ids.astype(np.int64).clip(0, 65535)]

        folder, suffix = mats, ".mat"
        if not listing.is_file():
            listing = root / "ImageSets" / "Main" / f"{split}.txt"
    else:
        raise FileNotFoundError(f"PASCAL-Context root {str(root)!r} has no labels; "
                                f"expected {expected}")
    if not listing.is_file():
        raise FileNotFoundError(f"PASCAL-Context split file {str(listing)!r} is missing; "
                                f"expected {expected}")
    pairs = []
    for i in _ids(listing):
        img, lab = images / f"{i}.jpg", folder / f"{i}{suffix}"
        if not img.is_file() or not lab.is_file():
            missing = img if not img.is_file() else lab
            raise FileNotFoundError(f"PASCAL-Context {split} lists {i} but {missing} is "
                                    "missing")
        pairs.append((img, lab))
    return _record(pairs, read, limit, n_jobs, return_X_y,
                   class_names=PASCAL_CONTEXT_CLASSES, name=f"pascal_context-{split}",
                   colors=voc_colormap(len(PASCAL_CONTEXT_CLASSES) + 1)[1:],
                   description="PASCAL-Context: the 59 most frequent classes of whole VOC "
                   "2010 scenes (objects and stuff); the rest is void")


# --------------------------------------------------------------------------- COCO-Stuff
#: COCO-Stuff's 182 label names (annotation value ``v`` is id ``v + 1``), "" for the 11
#: thing ids COCO dropped, which no annotation uses.
_COCO_STUFF_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "",
    "backpack", "umbrella", "", "", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", "", "wine glass", "cup", "fork", "knife",
    "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "",
    "dining table", "", "", "toilet", "", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower",
    "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other",
    "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain",
    "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic",
    "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof",
    "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent",
    "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete",
    "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood",
)
COCO_STUFF_CLASSES = tuple(n for n in _COCO_STUFF_NAMES if n)
_COCO_TO_TRAIN = np.full(256, 255, np.uint8)
_COCO_TO_TRAIN[[i for i, n in enumerate(_COCO_STUFF_NAMES) if n]] = np.arange(
    len(COCO_STUFF_CLASSES))


def _read_coco_stuff_label(path):
    lab = read_label_png(path)
    if lab.ndim != 2:
        raise ValueError(f"{path} is not a one-channel stuffthingmaps annotation")
    lab = _checked_labels(lab, path, len(_COCO_STUFF_NAMES))
    return _COCO_TO_TRAIN[lab]


def load_coco_stuff(root, split="train", *, limit=None, n_jobs=None, return_X_y=False):
    """Load COCO-Stuff 164k (171 classes: 80 things and 91 stuff).

    Parameters
    ----------
    root : str or path-like
        A folder with ``images/{train2017,val2017}/*.jpg`` (COCO's ``train2017.zip``
        and ``val2017.zip``) and ``annotations/{train2017,val2017}/*.png``
        (``stuffthingmaps_trainval2017.zip``: value ``v`` is COCO-Stuff id ``v + 1``, 255
        unlabeled).
    split : {"train", "val"}, default="train"
    limit, n_jobs, return_X_y
        As in ``load_camvid``.

    Returns
    -------
    data : Dataset
        ``labels`` uint8: the 182 ids less the 11 COCO dropped, in order, as 0..170;
        unlabeled 255.
    """
    _check_choice(split, "split", ("train", "val"))
    limit = check_limit(limit)
    expected = ("a folder with images/{train2017,val2017}/*.jpg and "
                "annotations/{train2017,val2017}/*.png (stuffthingmaps_trainval2017.zip)")
    folder = f"{split}2017"
    pairs = _images_and_annotations(root, folder, "COCO-Stuff", expected)
    return _record(pairs, _read_coco_stuff_label, limit, n_jobs, return_X_y,
                   class_names=COCO_STUFF_CLASSES, name=f"coco_stuff-{split}",
                   colors=_spread_colors(len(COCO_STUFF_CLASSES), 171),
                   description="COCO-Stuff 164k: 80 thing and 91 stuff classes; "
                   "unlabeled pixels are void")
