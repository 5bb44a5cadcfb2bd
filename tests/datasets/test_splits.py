"""``load_splits``: one definition of the train, val and test splits of each data set."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hybridseg.datasets import load_sample, load_splits


def _names(d):
    return [str(f).rsplit("/", 1)[-1] for f in d.filenames]


@pytest.mark.parametrize("name, sample", [("sample", "camvid"), ("sample:camvid", "camvid"),
                                          ("sample:membrane", "membrane")])
def test_the_samples_set_their_last_training_image_aside_as_val(name, sample):
    data = load_sample(sample)
    marked = {s: [f for f, m in zip(data.filenames, data.split) if m == s]
              for s in ("train", "test")}
    train, val, test = load_splits(name)
    assert _names(train) == marked["train"][:-1]
    assert _names(val) == marked["train"][-1:]
    assert _names(test) == marked["test"]
    for split, d in zip(("train", "val", "test"), (train, val, test)):
        assert d.name == f"sample-{sample}-{split}"
        assert d.class_names == data.class_names and d.ignore_index == 255
        np.testing.assert_array_equal(d.colors, data.colors)
        assert len(d.images) == len(d.labels) == len(d.filenames) == len(d)
        assert "split" not in d
    i = data.filenames.index(test.filenames[0])
    np.testing.assert_array_equal(test.images[0], data.images[i])
    np.testing.assert_array_equal(test.labels[0], data.labels[i])


def test_limits_cut_train_and_test_not_val():
    splits = load_splits("sample", limit_train=1, limit_test=1)
    assert [len(d) for d in splits] == [1, 1, 1]
    assert splits.train.filenames == load_splits("sample").train.filenames[:1]
    with pytest.raises(ValueError, match="limit_train must be a positive int"):
        load_splits("sample", limit_train=0)


def test_bad_names(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        load_splits(tmp_path / "missing")
    with pytest.raises(ValueError, match="'isbi' needs root"):
        load_splits("isbi")
    with pytest.raises(ValueError, match="needs train and test splits"):
        load_splits(tmp_path)


def _write_folder(root, splits, layout="segnet", k=3, size=(8, 10)):
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        if layout == "segnet":
            img_dir, lab_dir = root / split, root / f"{split}annot"
        else:
            img_dir, lab_dir = root / split / "images", root / split / "labels"
        img_dir.mkdir(parents=True)
        lab_dir.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
                img_dir / f"{split}{i}.png")
            lab = rng.integers(0, k, size, dtype=np.uint8)
            lab.flat[0] = k - 1 if split == "train" else 0  # train holds every class
            Image.fromarray(lab).save(lab_dir / f"{split}{i}.png")


def test_a_folder_without_val_sets_a_fifth_of_train_aside(tmp_path):
    _write_folder(tmp_path, {"train": 10, "test": 2})
    train, val, test = load_splits(tmp_path, seed=0)
    assert (len(train), len(val), len(test)) == (8, 2, 2)
    assert not set(train.filenames) & set(val.filenames)
    assert sorted(train.filenames + val.filenames) == sorted(
        str(tmp_path / "train" / f"train{i}.png") for i in range(10))
    assert val.filenames == load_splits(tmp_path, seed=0).val.filenames
    assert val.filenames != load_splits(tmp_path, seed=3).val.filenames
    # every split carries the class names of the data set, not of its own labels
    assert train.class_names == val.class_names == test.class_names == ("0", "1", "2")


def test_a_folder_with_val_and_the_images_labels_layout(tmp_path):
    _write_folder(tmp_path, {"train": 3, "val": 2, "test": 1}, layout="images-labels")
    (tmp_path / "classes.txt").write_text("sky\nroad\ncar\n")
    train, val, test = load_splits(tmp_path)
    assert (len(train), len(val), len(test)) == (3, 2, 1)
    assert test.class_names == ("sky", "road", "car")
    assert val.name == f"{tmp_path.name}-val"


@pytest.mark.data
def test_isbi_is_cut_in_contiguous_blocks(isbi_root):
    train, val, test = load_splits("isbi", isbi_root)
    slices = [[int(f.rsplit("/", 1)[-1][:-4]) for f in d.filenames] for d in (train, val, test)]
    assert slices == [list(range(0, 20)), list(range(20, 25)), list(range(25, 30))]
    assert test.class_names == ("membrane", "cell")
    assert test.images[0].shape == (512, 512)


@pytest.mark.data
def test_camvid_is_the_published_split(camvid_root):
    train, val, test = load_splits("camvid", camvid_root, limit_train=5, limit_test=4)
    assert (len(train), len(test)) == (5, 4)
    assert len(val) == 101
    assert [d.name for d in (train, val, test)] == ["camvid-train", "camvid-val", "camvid-test"]
    assert all("/val/" in f for f in val.filenames)
