"""The field's benchmark loaders on small trees built in each official layout (file names,
palette PNGs, id encodings): no network."""

import numpy as np
import pytest
from PIL import Image

from hybridseg import datasets as ds
from hybridseg.datasets._benchmarks import voc_colormap


def _rgb(rng, h, w):
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def voc(tmp_path, rng):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    ids = ["2007_000032", "2007_000039", "2007_000063"]
    truth = {}
    for k, name in enumerate(ids):
        Image.fromarray(_rgb(rng, 20, 30)).save(root / "JPEGImages" / f"{name}.jpg")
        lab = np.zeros((20, 30), np.uint8)
        lab[5:15, 5:25] = 3 + k
        lab[4, 5:25] = 255
        im = Image.fromarray(lab, mode="P")
        im.putpalette(voc_colormap().ravel().tolist())
        im.save(root / "SegmentationClass" / f"{name}.png")
        truth[name] = lab
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:2]) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text(ids[2] + "\n")
    return root, ids, truth


def test_voc_reads_palette_indices_and_void_borders(voc):
    root, ids, truth = voc
    d = ds.load_voc(root, split="train")
    assert len(d.images) == len(d.labels) == 2 and len(d.class_names) == 21
    assert d.ignore_index == 255 and d.name == "voc-train"
    np.testing.assert_array_equal(d.labels[0], truth[ids[0]])
    assert d.images[0].shape == (20, 30, 3) and d.labels[0].dtype == np.uint8
    # the palette is VOC's: class 1 is (128, 0, 0), class 15 (person) (192, 128, 128)
    assert tuple(d.colors[1]) == (128, 0, 0) and tuple(d.colors[15]) == (192, 128, 128)
    assert len(ds.load_voc(root, split="val").images) == 1


def test_voc_augmented_training_set_from_sbd(voc, tmp_path, rng):
    from scipy.io import savemat

    root, ids, truth = voc
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    (sbd / "cls").mkdir(parents=True)
    extra = "2008_000002"  # an SBD image VOC's segmentation set does not have
    Image.fromarray(_rgb(rng, 20, 30)).save(root / "JPEGImages" / f"{extra}.jpg")
    seg = np.zeros((20, 30), np.uint8)
    seg[:, 10:] = 7
    savemat(sbd / "cls" / f"{extra}.mat",
            {"GTcls": {"Segmentation": seg, "Boundaries": np.zeros(1)}})
    (sbd / "train.txt").write_text(f"{extra}\n{ids[2]}\n")  # ids[2] is VOC val: left out
    (sbd / "val.txt").write_text(f"{ids[0]}\n")
    d = ds.load_voc(root, split="train_aug", sbd_root=sbd)
    names = [f.rsplit("/", 1)[1] for f in d.filenames]
    assert names == [f"{ids[0]}.jpg", f"{ids[1]}.jpg", f"{extra}.jpg"]
    np.testing.assert_array_equal(d.labels[0], truth[ids[0]])  # VOC's own where it has one
    np.testing.assert_array_equal(d.labels[2], seg)
    with pytest.raises(ValueError, match="sbd_root"):
        ds.load_voc(root, split="train_aug")


def test_voc_wrong_layouts_say_what_was_expected(voc, tmp_path):
    root, ids, _ = voc
    with pytest.raises(FileNotFoundError, match="VOC2012 folder of the official archive"):
        ds.load_voc(tmp_path, split="train")
    with pytest.raises(ValueError, match="split must be one of"):
        ds.load_voc(root, split="test")
    (root / "JPEGImages" / f"{ids[1]}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=f"lists {ids[1]}"):
        ds.load_voc(root, split="train")
    rgb = np.zeros((20, 30, 3), np.uint8)
    Image.fromarray(rgb).save(root / "SegmentationClass" / f"{ids[2]}.png")
    with pytest.raises(ValueError, match="palette images"):
        ds.load_voc(root, split="val")
    lab = np.full((20, 30), 40, np.uint8)
    Image.fromarray(lab).save(root / "SegmentationClass" / f"{ids[2]}.png")
    with pytest.raises(ValueError, match="holds labels 40"):
        ds.load_voc(root, split="val")


@pytest.fixture
def cityscapes(tmp_path, rng):
    root = tmp_path / "cityscapes"
    for split, city in (("train", "aachen"), ("val", "frankfurt"), ("val", "lindau")):
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        stem = f"{city}_000000_000019"
        Image.fromarray(_rgb(rng, 16, 32)).save(
            root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        ids = np.zeros((16, 32), np.uint8)
        ids[:, :8] = 7     # road -> 0
        ids[:, 8:16] = 26  # car -> 13
        ids[:, 16:24] = 1  # ego vehicle -> void
        ids[:, 24:] = 33   # bicycle -> 18
        gt = root / "gtFine" / split / city
        Image.fromarray(ids).save(gt / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(ids + 1).save(gt / f"{stem}_gtFine_instanceIds.png")  # ignored
    return root


def test_cityscapes_maps_label_ids_to_train_ids(cityscapes):
    d = ds.load_cityscapes(cityscapes, split="val")
    assert len(d.images) == 2 and len(d.class_names) == 19 and d.name == "cityscapes-val"
    want = np.zeros((16, 32), np.uint8)
    want[:, 8:16], want[:, 16:24], want[:, 24:] = 13, 255, 18
    np.testing.assert_array_equal(d.labels[0], want)
    assert d.class_names[13] == "car" and d.colors.shape == (19, 3)
    assert ds.CITYSCAPES_CLASSES[0] == "road"


def test_cityscapes_wrong_layout(cityscapes, tmp_path):
    with pytest.raises(FileNotFoundError, match="logging in"):
        ds.load_cityscapes(tmp_path / "nothing", split="train")
    gt = next((cityscapes / "gtFine" / "train" / "aachen").glob("*labelIds.png"))
    gt.unlink()
    with pytest.raises(FileNotFoundError, match="has no label file"):
        ds.load_cityscapes(cityscapes, split="train")


def test_ade20k_shifts_ids_and_voids_other(tmp_path, rng):
    root = tmp_path / "ADEChallengeData2016"
    for split, stem in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        Image.fromarray(_rgb(rng, 12, 16)).save(root / "images" / split / f"{stem}.jpg")
        a = np.zeros((12, 16), np.uint8)
        a[:, 4:] = 1
        a[:, 12:] = 150
        Image.fromarray(a).save(root / "annotations" / split / f"{stem}.png")
    d = ds.load_ade20k(root, split="train")
    want = np.full((12, 16), 255, np.uint8)
    want[:, 4:], want[:, 12:] = 0, 149
    np.testing.assert_array_equal(d.labels[0], want)
    assert len(d.class_names) == 150 and d.class_names[0] == "wall"
    assert len(ds.load_ade20k(root, split="val").images) == 1
    bad = np.full((12, 16), 151, np.uint8)
    Image.fromarray(bad).save(root / "annotations" / "validation" / "ADE_val_00000001.png")
    with pytest.raises(ValueError, match="holds labels 151"):
        ds.load_ade20k(root, split="val")
    with pytest.raises(FileNotFoundError, match="images/ and annotations/"):
        ds.load_ade20k(tmp_path, split="train")


def test_benchmark_splits_for_compare(voc):
    from hybridseg.apps._compare import load_data

    root = voc[0]
    train, val, test = ds.load_splits("voc", root)
    # the official val is the test split; a fifth of train (at least one) is set aside
    assert len(test.images) == 1 and len(train.images) + len(val.images) == 2
    assert test.name == "voc-val" and len(val.images) == 1
    data = load_data("voc", root)
    assert len(data["class_names"]) == 21 and data["ignore_index"] == 255
    with pytest.raises(ValueError, match="needs --data-root"):
        load_data("voc")
    with pytest.raises(ValueError, match="needs root"):
        ds.load_splits("cityscapes")


def _context_tree(tmp_path, rng, form):
    root = tmp_path / "VOCdevkit" / "VOC2010"
    (root / "JPEGImages").mkdir(parents=True)
    ids = ["2008_000002", "2008_000003", "2008_000007"]
    truth = {}
    for k, name in enumerate(ids):
        Image.fromarray(_rgb(rng, 14, 18)).save(root / "JPEGImages" / f"{name}.jpg")
        want = np.full((14, 18), 255, np.uint8)  # background: none of the 59
        want[2:8, 3:10] = k          # aeroplane, bag, bed
        want[9:, 10:] = 58           # wood
        truth[name] = want
        if form == "png":
            (root / "SegmentationClassContext").mkdir(exist_ok=True)
            ids59 = np.where(want == 255, 0, want.astype(np.int16) + 1).astype(np.uint8)
            Image.fromarray(ids59).save(root / "SegmentationClassContext" / f"{name}.png")
        else:  # the 459-class release: LabelMap ids into labels.txt
            from scipy.io import savemat

            (root / "trainval").mkdir(exist_ok=True)
            ids459 = np.full((14, 18), 7, np.uint16)     # 7: a class outside the 59
            ids459[want == 0], ids459[want == 1] = 2, 23
            ids459[want == 2], ids459[want == 58] = 25, 459
            savemat(root / "trainval" / f"{name}.mat", {"LabelMap": ids459})
    if form == "png":
        sets = root / "ImageSets" / "SegmentationContext"
    else:
        names = {i: f"other{i}" for i in range(1, 460)}
        names.update({2: "aeroplane", 23: "bag", 25: "bed", 459: "wood"})
        for i, c in enumerate(ds.PASCAL_CONTEXT_CLASSES[3:-1]):  # the rest of the 59
            names[100 + i] = c
        (root / "labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in names.items()))
        sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (sets / "val.txt").write_text(ids[2] + "\n")
    return root, ids, truth


@pytest.mark.parametrize("form", ["png", "mat"])
def test_pascal_context_maps_to_59_classes_with_the_rest_void(tmp_path, rng, form):
    root, ids, truth = _context_tree(tmp_path, rng, form)
    d = ds.load_pascal_context(root, split="train")
    assert len(d.class_names) == 59 and d.class_names[-1] == "wood"
    assert d.ignore_index == 255 and len(d.images) == 2
    for name, lab in zip(ids, d.labels):
        np.testing.assert_array_equal(lab, truth[name])
    (val,) = ds.load_pascal_context(root, split="val").labels
    np.testing.assert_array_equal(val, truth[ids[2]])
    with pytest.raises(FileNotFoundError, match="SegmentationClassContext/"):
        ds.load_pascal_context(tmp_path, split="train")
    train, _, test = ds.load_splits("pascal_context", root)
    assert test.name == "pascal_context-val" and len(train.class_names) == 59


def test_pascal_context_bad_labels(tmp_path, rng):
    root, ids, _ = _context_tree(tmp_path, rng, "png")
    Image.fromarray(np.full((14, 18), 60, np.uint8)).save(
        root / "SegmentationClassContext" / f"{ids[0]}.png")
    with pytest.raises(ValueError, match="holds labels 60"):
        ds.load_pascal_context(root, split="train")
    (root / "SegmentationClassContext" / f"{ids[1]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"lists {ids[1]} but .* is missing"):
        ds.load_pascal_context(root, split="train", limit=1)


def test_coco_stuff_maps_182_ids_to_171_classes(tmp_path, rng):
    root = tmp_path / "cocostuff"
    for split in ("train2017", "val2017"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        stem = "000000000009" if split == "train2017" else "000000000139"
        Image.fromarray(_rgb(rng, 10, 12)).save(root / "images" / split / f"{stem}.jpg")
        a = np.full((10, 12), 255, np.uint8)         # unlabeled
        a[:, :3] = 0                                  # person (id 1)
        a[:, 3:6] = 12                                # stop sign (id 13, after a gap)
        a[:, 6:9] = 91                                # banner (id 92), first stuff
        a[:, 9:] = 181                                # wood (id 182)
        Image.fromarray(a).save(root / "annotations" / split / f"{stem}.png")
    d = ds.load_coco_stuff(root, split="train")
    assert len(d.class_names) == 171 and d.class_names[11] == "stop sign"
    assert d.class_names[80] == "banner" and d.class_names[170] == "wood"
    want = np.full((10, 12), 255, np.uint8)
    want[:, :3], want[:, 3:6], want[:, 6:9], want[:, 9:] = 0, 11, 80, 170
    np.testing.assert_array_equal(d.labels[0], want)
    assert ds.load_coco_stuff(root, split="val").name == "coco_stuff-val"
    # values past the 182 ids (and not 255) are refused, naming the file
    bad = np.full((10, 12), 182, np.uint8)
    Image.fromarray(bad).save(root / "annotations" / "val2017" / "000000000139.png")
    with pytest.raises(ValueError, match="holds labels 182"):
        ds.load_coco_stuff(root, split="val")
    with pytest.raises(FileNotFoundError, match=r"annotations/\{train2017,val2017\}"):
        ds.load_coco_stuff(tmp_path, split="train")
