"""load_sample: the small real sample embedded in the package."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hybridseg.datasets as datasets_pkg
from hybridseg.datasets import CAMVID_CLASSES, ISBI_CLASSES, load_sample

PKG_DIR = Path(datasets_pkg.__file__).parent
SAMPLE_DIR = PKG_DIR / "data" / "sample"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def camvid_sample():
    return load_sample()


@pytest.fixture(scope="module")
def membrane_sample():
    return load_sample("membrane")


def test_camvid_sample(camvid_sample):
    s = camvid_sample
    assert len(s) == len(s.images) == len(s.labels) == len(s.filenames) == 6
    assert s.split == ["train"] * 4 + ["test"] * 2
    assert [f.split("_", 1)[0] for f in s.filenames] == s.split
    assert s.class_names == CAMVID_CLASSES
    assert s.ignore_index == 255
    assert s.name == "sample-camvid"
    assert s.colors.shape == (11, 3)
    for im, lab in zip(s.images, s.labels, strict=True):
        assert im.shape == (360, 480, 3) and im.dtype == np.uint8
        assert lab.shape == (360, 480) and lab.dtype == np.uint8
        assert set(np.unique(lab).tolist()) <= set(range(11)) | {255}
        assert im.std() > 10  # real pictures, not blank placeholders
        assert np.unique(lab).size >= 4  # a real road scene has several classes
    # The six images are different pictures.
    means = {round(float(im.mean()), 3) for im in s.images}
    assert len(means) == 6


def test_camvid_sample_void_mapping(camvid_sample):
    for fn, lab in zip(camvid_sample.filenames, camvid_sample.labels, strict=True):
        with Image.open(SAMPLE_DIR / "camvid" / "labels" / fn) as im:
            raw = np.asarray(im)
        np.testing.assert_array_equal(lab, np.where(raw == 11, 255, raw))


def test_membrane_sample(membrane_sample):
    s = membrane_sample
    assert len(s) == 4
    assert s.split == ["train", "train", "test", "test"]
    assert s.class_names == ISBI_CLASSES
    for im, lab in zip(s.images, s.labels, strict=True):
        assert im.shape == (256, 256) and im.dtype == np.uint8
        assert lab.shape == (256, 256) and lab.dtype == np.uint8
        assert set(np.unique(lab).tolist()) == {0, 1}
        assert im.std() > 10


def test_bad_name():
    with pytest.raises(ValueError, match="camvid"):
        load_sample("cityscapes")


def test_sample_is_small():
    files = [p for p in SAMPLE_DIR.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".png"]) == 2 * 6 + 2 * 4
    total = sum(p.stat().st_size for p in files)
    assert total < 5 * 1024 * 1024, total


def test_sample_files_are_declared_package_data():
    if sys.version_info < (3, 11):  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    else:
        import tomllib
    pyproject = REPO_ROOT / "pyproject.toml"
    if not pyproject.is_file():  # pragma: no cover
        pytest.skip("not running from a source checkout")
    conf = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    patterns = conf["tool"]["setuptools"]["package-data"]["hybridseg.datasets"]
    # setuptools expands each pattern with glob(recursive=True) inside the package folder.
    declared = {
        Path(m).as_posix()
        for pat in patterns
        for m in glob.glob(pat, root_dir=PKG_DIR, recursive=True)
    }
    shipped = {
        p.relative_to(PKG_DIR).as_posix()
        for p in (PKG_DIR / "data").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped - declared == set()


# --------------------------------------------------------------------------- provenance
@pytest.mark.data
def test_camvid_sample_is_copied_unchanged(camvid_sample, camvid_root):
    for fn in camvid_sample.filenames:
        split, name = fn.split("_", 1)
        for kind, folder in (("images", split), ("labels", split + "annot")):
            ours = (SAMPLE_DIR / "camvid" / kind / fn).read_bytes()
            assert ours == (camvid_root / folder / name).read_bytes(), (kind, fn)


@pytest.mark.data
def test_membrane_sample_is_a_crop_of_the_stack(membrane_sample, isbi_root):
    from hybridseg.datasets import load_isbi_membrane

    full = load_isbi_membrane(isbi_root)
    for fn, im, lab in zip(
        membrane_sample.filenames, membrane_sample.images, membrane_sample.labels, strict=True
    ):
        idx = int(Path(fn).stem.split("_")[1])
        np.testing.assert_array_equal(im, full.images[idx][:256, :256])
        np.testing.assert_array_equal(lab, full.labels[idx][:256, :256])
