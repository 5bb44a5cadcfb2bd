"""load_camvid on the real CamVid copy in ../shared/data (SegNet split, 360x480)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hybridseg.datasets._camvid as camvid_mod
from hybridseg.datasets import CAMVID_CLASSES, Dataset, load_camvid

EXPECTED_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)
SPLIT_SIZES = {"train": 367, "val": 101, "test": 233, "trainval": 468, "all": 701}


@pytest.fixture(scope="module")
def camvid_val(camvid_root):
    return load_camvid(camvid_root, "val")


def _raw(path):
    with Image.open(path) as im:
        return np.asarray(im).copy()


# --------------------------------------------------------------------------- contents
@pytest.mark.data
def test_val_split_contents(camvid_val, camvid_root):
    ds = camvid_val
    assert isinstance(ds, Dataset)
    assert len(ds) == len(ds.images) == len(ds.labels) == len(ds.filenames) == 101
    assert ds.name == "camvid-val"
    assert ds.ignore_index == 255
    assert ds.n_classes == 11
    assert ds.colors.shape == (11, 3) and ds.colors.dtype == np.uint8
    for im, lab, fn in zip(ds.images, ds.labels, ds.filenames, strict=True):
        assert im.shape == (360, 480, 3) and im.dtype == np.uint8
        assert lab.shape == (360, 480) and lab.dtype == np.uint8
        assert Path(fn).parent == camvid_root / "val"
        values = np.unique(lab)
        assert set(values.tolist()) <= set(range(11)) | {255}, (fn, values)
    # The labels really hold several classes, and void is present somewhere in val.
    everything = np.unique(np.concatenate([np.unique(lab) for lab in ds.labels]))
    assert set(range(11)) <= set(everything.tolist())
    assert 255 in everything and 11 not in everything


@pytest.mark.data
def test_class_names_in_order(camvid_val):
    assert tuple(camvid_val.class_names) == EXPECTED_CLASSES
    assert CAMVID_CLASSES == EXPECTED_CLASSES


@pytest.mark.data
def test_filenames_sorted_and_complete(camvid_val, camvid_root):
    names = [Path(f).name for f in camvid_val.filenames]
    assert names == sorted(names)
    assert names == sorted(p.name for p in (camvid_root / "val").glob("*.png"))


@pytest.mark.data
def test_void_becomes_255_and_nothing_else_changes(camvid_val, camvid_root):
    # Find a label file that does contain void (id 11) on disk.
    for i, fn in enumerate(camvid_val.filenames):  # noqa: B007 - i is used after the loop
        raw = _raw(camvid_root / "valannot" / Path(fn).name)
        if (raw == 11).any():
            break
    else:  # pragma: no cover - the real data has void pixels
        pytest.fail("no val label with void pixels found")
    assert raw.ndim == 2 and raw.dtype == np.uint8
    lab = camvid_val.labels[i]
    expected = np.where(raw == 11, 255, raw).astype(np.uint8)
    np.testing.assert_array_equal(lab, expected)
    assert (lab == 255).sum() == (raw == 11).sum() > 0


@pytest.mark.data
def test_images_are_the_raw_pixels(camvid_val):
    for i in (0, 50, 100):
        np.testing.assert_array_equal(camvid_val.images[i], _raw(camvid_val.filenames[i]))


# --------------------------------------------------------------------------- splits
@pytest.mark.data
@pytest.mark.parametrize("split", ["train", "val", "test", "trainval", "all"])
def test_split_sizes(camvid_root, split, monkeypatch):
    # Decoding 700 PNGs is slow; the listing and pairing logic is what is tested here, so
    # the readers are replaced by cheap stand-ins that record which files were asked for.
    seen = []
    monkeypatch.setattr(camvid_mod, "read_image", lambda p: seen.append(Path(p)) or p)
    monkeypatch.setattr(camvid_mod, "_read_camvid_label", lambda p: p)
    ds = load_camvid(camvid_root, split)
    assert len(ds.images) == len(ds.labels) == len(ds.filenames) == SPLIT_SIZES[split]
    for img, lab in zip(ds.images, ds.labels, strict=True):
        assert img.name == lab.name
        assert lab.parent.name == img.parent.name + "annot"
    folders = {p.parent.name for p in seen}
    assert folders == set(camvid_mod.CAMVID_SPLITS[split])


@pytest.mark.data
def test_trainval_is_train_then_val(camvid_root):
    ds = load_camvid(camvid_root, "trainval", limit=3)
    assert [Path(f).parent.name for f in ds.filenames] == ["train"] * 3
    first_train = sorted((camvid_root / "train").glob("*.png"))[:3]
    assert [Path(f) for f in ds.filenames] == first_train


@pytest.mark.data
def test_limit(camvid_val, camvid_root):
    ds = load_camvid(camvid_root, "val", limit=5)
    assert len(ds) == 5
    assert ds.filenames == camvid_val.filenames[:5]
    for a, b in zip(ds.labels, camvid_val.labels[:5], strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(load_camvid(camvid_root, "val", limit=1000)) == 101


@pytest.mark.data
@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "3"])
def test_bad_limit(camvid_root, limit):
    with pytest.raises(ValueError, match="limit"):
        load_camvid(camvid_root, "val", limit=limit)


@pytest.mark.data
def test_n_jobs_gives_identical_arrays(camvid_val, camvid_root):
    ds = load_camvid(camvid_root, "val", n_jobs=2)
    assert ds.filenames == camvid_val.filenames
    for a, b in zip(ds.images, camvid_val.images, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ds.labels, camvid_val.labels, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.data
def test_return_X_y(camvid_root):
    X, y = load_camvid(camvid_root, "val", limit=4, return_X_y=True)
    ref = load_camvid(camvid_root, "val", limit=4)
    assert isinstance(X, list) and isinstance(y, list)
    assert len(X) == len(y) == 4
    for a, b in zip(X, ref.images, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(y, ref.labels, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- errors
def test_bad_split_names_the_choices(tmp_path):
    with pytest.raises(ValueError) as exc:
        load_camvid(tmp_path, "validation")
    msg = str(exc.value)
    for choice in ("train", "val", "test", "trainval", "all"):
        assert repr(choice) in msg
    assert "'validation'" in msg


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_camvid(tmp_path / "nowhere", "val")


def test_root_without_split_folder(tmp_path):
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="valannot"):
        load_camvid(tmp_path, "val")


def test_root_none_without_cache_points_at_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDSEG_DATA_HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="fetch_camvid"):
        load_camvid(None, "val")


@pytest.mark.data
def test_root_none_uses_the_cached_copy(tmp_path, monkeypatch, camvid_root):
    home = tmp_path / "home"
    home.mkdir()
    try:
        (home / "camvid").symlink_to(camvid_root, target_is_directory=True)
    except OSError:  # pragma: no cover - no symlinks on this file system
        pytest.skip("cannot create a symlink here")
    monkeypatch.setenv("HYBRIDSEG_DATA_HOME", str(home))
    ds = load_camvid(split="val", limit=2)
    ref = load_camvid(camvid_root, "val", limit=2)
    assert [Path(f).name for f in ds.filenames] == [Path(f).name for f in ref.filenames]
    np.testing.assert_array_equal(ds.labels[1], ref.labels[1])


def _mini_root(tmp_path, camvid_root, n=2):
    root = tmp_path / "CamVid"
    for sub in ("val", "valannot"):
        (root / sub).mkdir(parents=True)
    for p in sorted((camvid_root / "val").glob("*.png"))[:n]:
        shutil.copy(p, root / "val" / p.name)
        shutil.copy(camvid_root / "valannot" / p.name, root / "valannot" / p.name)
    return root


@pytest.mark.data
def test_missing_label_file(tmp_path, camvid_root):
    root = _mini_root(tmp_path, camvid_root)
    victim = sorted((root / "valannot").iterdir())[1]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(victim.name)):
        load_camvid(root, "val")


@pytest.mark.data
def test_label_ids_above_void_are_rejected(tmp_path, camvid_root):
    root = _mini_root(tmp_path, camvid_root)
    victim = sorted((root / "valannot").iterdir())[0]
    lab = _raw(victim)
    lab[0, 0] = 12
    Image.fromarray(lab).save(victim)
    with pytest.raises(ValueError, match="CamVid ids"):
        load_camvid(root, "val")


def test_empty_split_folder(tmp_path):
    for sub in ("test", "testannot"):
        (tmp_path / sub).mkdir()
    with pytest.raises(FileNotFoundError, match="no CamVid images"):
        load_camvid(tmp_path, "test")
