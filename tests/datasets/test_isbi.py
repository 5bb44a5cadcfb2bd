"""load_isbi_membrane on the real ISBI 2012 training stack in ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hybridseg.datasets import ISBI_CLASSES, load_isbi_membrane


@pytest.fixture(scope="module")
def isbi(isbi_root):
    return load_isbi_membrane(isbi_root)


def _raw(path):
    with Image.open(path) as im:
        return np.asarray(im).copy()


@pytest.mark.data
def test_contents(isbi):
    assert len(isbi) == len(isbi.images) == len(isbi.labels) == 30
    assert isbi.class_names == ISBI_CLASSES == ("membrane", "cell")
    assert isbi.ignore_index == 255
    assert isbi.name == "isbi2012_membrane"
    for im, lab in zip(isbi.images, isbi.labels, strict=True):
        assert im.shape == (512, 512) and im.dtype == np.uint8
        assert lab.shape == (512, 512) and lab.dtype == np.uint8
        assert set(np.unique(lab).tolist()) <= {0, 1}
    # Both classes occur, and the images are real EM slices, not blank.
    assert all(0 < lab.mean() < 1 for lab in isbi.labels)
    assert all(im.std() > 10 for im in isbi.images)


@pytest.mark.data
def test_label_one_exactly_where_raw_is_255(isbi, isbi_root):
    for i in (0, 7, 29):
        raw = _raw(isbi_root / "label" / f"{i}.png")
        assert Path(isbi.filenames[i]).name == f"{i}.png"
        np.testing.assert_array_equal(isbi.labels[i] == 1, raw == 255)
        np.testing.assert_array_equal(isbi.images[i], _raw(isbi_root / "image" / f"{i}.png"))


@pytest.mark.data
def test_sorted_numerically(isbi):
    names = [Path(f).name for f in isbi.filenames]
    assert names == [f"{i}.png" for i in range(30)]


@pytest.mark.data
def test_limit_and_return_X_y(isbi, isbi_root):
    X, y = load_isbi_membrane(isbi_root, limit=12, return_X_y=True, n_jobs=2)
    assert len(X) == len(y) == 12
    for a, b in zip(X, isbi.images[:12], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(y, isbi.labels[:12], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def isbi_copy(tmp_path, isbi_root):
    root = tmp_path / "membrane"
    for sub in ("image", "label"):
        (root / sub).mkdir(parents=True)
        for i in (0, 1, 2, 10, 11):
            shutil.copy(isbi_root / sub / f"{i}.png", root / sub / f"{i}.png")
    return root


@pytest.mark.data
def test_numeric_order_on_a_copy(isbi_copy):
    ds = load_isbi_membrane(isbi_copy)
    assert [Path(f).name for f in ds.filenames] == ["0.png", "1.png", "2.png", "10.png", "11.png"]


@pytest.mark.data
def test_missing_label_file(isbi_copy):
    (isbi_copy / "label" / "10.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"10\.png"):
        load_isbi_membrane(isbi_copy)
    # A limit that stops before the missing file loads fine.
    assert len(load_isbi_membrane(isbi_copy, limit=3)) == 3


def test_missing_folders(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_isbi_membrane(tmp_path / "absent")
    (tmp_path / "image").mkdir()
    with pytest.raises(FileNotFoundError, match="label"):
        load_isbi_membrane(tmp_path)
    (tmp_path / "label").mkdir()
    with pytest.raises(FileNotFoundError, match="no PNG"):
        load_isbi_membrane(tmp_path)
