"""load_folder on small folders written with PIL in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hybridseg.datasets import Dataset, load_folder

H, W = 12, 16


def _rgb(seed, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _labels(seed, k, h=H, w=W):
    lab = np.random.default_rng(1000 + seed).integers(0, k, (h, w)).astype(np.uint8)
    lab.flat[: k] = np.arange(k)  # every class present
    return lab


def _save(arr, path, mode=None, **kw):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode=mode)
    im.save(path, **kw)
    return path


def _make(tmp_path, names=("a", "b", "c"), k=4, label_suffix="", sub=""):
    """Images ``<name>.png`` and gray labels ``<name><suffix>.png``; returns the arrays."""
    img_dir, lab_dir = tmp_path / "images", tmp_path / "labels"
    imgs, labs = {}, {}
    for i, n in enumerate(names):
        imgs[n], labs[n] = _rgb(i), _labels(i, k)
        _save(imgs[n], img_dir / sub / f"{n}.png")
        _save(labs[n], lab_dir / sub / f"{n}{label_suffix}.png")
    return img_dir, lab_dir, imgs, labs


# --------------------------------------------------------------------------- gray labels
def test_gray_integer_labels(tmp_path):
    img_dir, lab_dir, imgs, labs = _make(tmp_path, names=("b", "a", "c"), k=4)
    ds = load_folder(img_dir, lab_dir)
    assert isinstance(ds, Dataset)
    assert [Path(f).name for f in ds.filenames] == ["a.png", "b.png", "c.png"]
    for n, im, lab in zip("abc", ds.images, ds.labels, strict=True):
        assert im.dtype == np.uint8 and im.shape == (H, W, 3)
        assert lab.dtype == np.uint8 and lab.shape == (H, W)
        np.testing.assert_array_equal(im, imgs[n])
        np.testing.assert_array_equal(lab, labs[n])
    assert ds.class_names == ("0", "1", "2", "3")
    assert ds.ignore_index == 255
    assert ds.name == "images"
    assert ds.colors is None
    assert load_folder(img_dir, lab_dir, name="mine").name == "mine"


def test_class_names_inferred_from_largest_label_ignoring_void(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    lab = np.zeros((H, W), np.uint8)
    lab[0, :3] = [1, 6, 255]
    _save(_rgb(0), img_dir / "x.png")
    _save(lab, lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir)
    assert ds.class_names == tuple(str(i) for i in range(7))
    assert ds.n_classes == 7


def test_palette_labels_give_indices(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    idx = _labels(0, 5)
    idx[0, 0] = 255
    im = Image.frombytes("P", (W, H), idx.tobytes())
    palette = np.random.default_rng(3).integers(0, 256, (256, 3), dtype=np.uint8)
    im.putpalette(palette.ravel().tolist())
    lab_dir.mkdir(parents=True)
    im.save(lab_dir / "x.png")
    _save(_rgb(0), img_dir / "x.png")
    with Image.open(lab_dir / "x.png") as check:
        assert check.mode == "P"
    ds = load_folder(img_dir, lab_dir)
    np.testing.assert_array_equal(ds.labels[0], idx)
    assert ds.class_names == ("0", "1", "2", "3", "4")


def test_sixteen_bit_labels_keep_their_values(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    lab = np.zeros((H, W), np.uint16)
    lab[0, 0] = 300
    lab[1, 1] = 7
    _save(_rgb(0), img_dir / "x.png")
    _save(lab, lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir, ignore_index=-1)
    assert ds.labels[0].dtype == np.int32
    np.testing.assert_array_equal(ds.labels[0], lab.astype(np.int32))
    assert len(ds.class_names) == 301


# --------------------------------------------------------------------------- colour labels
COLOURS = {(0, 0, 0): 255, (255, 0, 0): 0, (0, 255, 0): 1, (0, 0, 255): 2}


def _colour_label(ids, table):
    """Paint class ids with ``table[id]`` colours."""
    out = np.zeros((*ids.shape, 3), np.uint8)
    for cid, col in table.items():
        out[ids == cid] = col
    return out


def test_rgb_labels_with_dict_colormap(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    ids = _labels(0, 3)
    ids[2, :5] = 255
    inverse = {v: k for k, v in COLOURS.items()}
    _save(_rgb(0), img_dir / "x.png")
    _save(_colour_label(ids, inverse), lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir, colormap=COLOURS)
    assert ds.labels[0].dtype == np.uint8
    np.testing.assert_array_equal(ds.labels[0], ids)
    assert (ds.labels[0] == 255).sum() == 5
    assert ds.class_names == ("0", "1", "2")


def test_rgba_labels_with_colormap_drop_alpha(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    ids = _labels(0, 3)
    rgb = _colour_label(ids, {v: k for k, v in COLOURS.items()})
    rgba = np.dstack([rgb, np.full((H, W), 128, np.uint8)])
    _save(_rgb(0), img_dir / "x.png")
    _save(rgba, lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir, colormap=COLOURS)
    np.testing.assert_array_equal(ds.labels[0], ids)


def test_rgb_labels_with_array_colormap(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    table = np.array([[10, 20, 30], [200, 0, 0], [0, 200, 0], [7, 7, 7]], np.uint8)
    ids = _labels(1, 4)
    _save(_rgb(0), img_dir / "x.png")
    _save(table[ids], lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir, colormap=table)
    np.testing.assert_array_equal(ds.labels[0], ids)
    assert ds.class_names == ("0", "1", "2", "3")
    np.testing.assert_array_equal(ds.colors, table)
    assert ds.colors.dtype == np.uint8
    # A plain list of lists works too.
    ds2 = load_folder(img_dir, lab_dir, colormap=table.tolist())
    np.testing.assert_array_equal(ds2.labels[0], ids)


def test_array_colormap_names_every_class(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    table = np.array([[10, 20, 30], [200, 0, 0], [0, 200, 0]], np.uint8)
    ids = _labels(1, 2)  # class 2 never painted
    _save(_rgb(0), img_dir / "x.png")
    _save(table[ids], lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir, colormap=table)
    assert len(ds.class_names) == len(ds.colors) == 3


def test_unknown_colour(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    ids = _labels(0, 3)
    rgb = _colour_label(ids, {v: k for k, v in COLOURS.items()})
    rgb[4, 4] = (1, 2, 3)
    _save(_rgb(0), img_dir / "x.png")
    _save(rgb, lab_dir / "x.png")
    with pytest.raises(ValueError, match=r"\(1, 2, 3\).*not in the colormap"):
        load_folder(img_dir, lab_dir, colormap=COLOURS)
    ds = load_folder(img_dir, lab_dir, colormap=COLOURS, unknown_color="ignore")
    expected = ids.copy()
    expected[4, 4] = 255
    np.testing.assert_array_equal(ds.labels[0], expected)
    # ignore_index is honoured for unknown colours (and the dict's own void colour keeps
    # the class the dict gives it).
    ds = load_folder(
        img_dir, lab_dir, colormap={(255, 0, 0): 0, (0, 255, 0): 1, (0, 0, 255): 2},
        unknown_color="ignore", ignore_index=100,
    )
    assert ds.labels[0][4, 4] == 100
    assert (ds.labels[0] == 100).sum() == 1
    assert ds.ignore_index == 100
    with pytest.raises(ValueError, match="unknown_color"):
        load_folder(img_dir, lab_dir, colormap=COLOURS, unknown_color="skip")


@pytest.mark.parametrize(
    "colormap, match",
    [
        (np.zeros((3, 4), np.uint8), "colormap"),
        ([[0, 0, 0], [0, 0, 0]], "same colour twice"),
        ([[0, 0, 300]], "0..255"),
    ],
)
def test_bad_colormap(tmp_path, colormap, match):
    img_dir, lab_dir, _, _ = _make(tmp_path, names=("a",))
    with pytest.raises(ValueError, match=match):
        load_folder(img_dir, lab_dir, colormap=colormap)


def test_gray_labels_with_colormap_raise(tmp_path):
    img_dir, lab_dir, _, _ = _make(tmp_path, names=("a",))
    with pytest.raises(ValueError, match="not RGB"):
        load_folder(img_dir, lab_dir, colormap=COLOURS)


def test_rgb_labels_without_colormap_raise(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    _save(_rgb(0), img_dir / "x.png")
    _save(_rgb(1), lab_dir / "x.png")
    with pytest.raises(ValueError, match="colormap"):
        load_folder(img_dir, lab_dir)


# --------------------------------------------------------------------------- pairing
def test_label_suffix(tmp_path):
    img_dir, lab_dir, _, labs = _make(tmp_path, names=("a", "b"), label_suffix="_L")
    assert (lab_dir / "a_L.png").is_file()
    ds = load_folder(img_dir, lab_dir, label_suffix="_L")
    np.testing.assert_array_equal(ds.labels[0], labs["a"])
    np.testing.assert_array_equal(ds.labels[1], labs["b"])
    with pytest.raises(FileNotFoundError, match="a"):
        load_folder(img_dir, lab_dir)


def test_label_with_another_extension(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    lab = _labels(0, 3)
    _save(_rgb(0), img_dir / "x.jpg", quality=95)
    _save(lab, lab_dir / "x.bmp")
    ds = load_folder(img_dir, lab_dir)
    np.testing.assert_array_equal(ds.labels[0], lab)


def test_missing_label(tmp_path):
    img_dir, lab_dir, _, _ = _make(tmp_path)
    (lab_dir / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"b\.png"):
        load_folder(img_dir, lab_dir)


def test_size_mismatch(tmp_path):
    img_dir, lab_dir, _, _ = _make(tmp_path, names=("a", "b"))
    _save(_labels(0, 4, h=H + 1), lab_dir / "b.png")
    with pytest.raises(ValueError, match=r"b\.png"):
        load_folder(img_dir, lab_dir)


def test_recursive(tmp_path):
    img_dir, lab_dir, imgs, labs = _make(tmp_path, names=("top",))
    for i, sub in enumerate(("s1", "s2/deeper")):
        imgs[sub], labs[sub] = _rgb(10 + i), _labels(10 + i, 3)
        _save(imgs[sub], img_dir / sub / "im.png")
        _save(labs[sub], lab_dir / sub / "im.png")
    flat = load_folder(img_dir, lab_dir)
    assert [Path(f).name for f in flat.filenames] == ["top.png"]
    ds = load_folder(img_dir, lab_dir, recursive=True)
    rel = [Path(f).relative_to(img_dir).as_posix() for f in ds.filenames]
    assert rel == ["s1/im.png", "s2/deeper/im.png", "top.png"]
    for key, im, lab in zip(("s1", "s2/deeper", "top"), ds.images, ds.labels, strict=True):
        np.testing.assert_array_equal(im, imgs[key])
        np.testing.assert_array_equal(lab, labs[key])
    # A sub-folder label that is missing is reported.
    (lab_dir / "s2" / "deeper" / "im.png").unlink()
    with pytest.raises(FileNotFoundError, match="deeper"):
        load_folder(img_dir, lab_dir, recursive=True)


def test_non_images_and_hidden_files_are_skipped(tmp_path):
    img_dir, lab_dir, _, _ = _make(tmp_path, names=("a",))
    (img_dir / "notes.txt").write_text("not an image")
    _save(_rgb(5), img_dir / ".hidden.png")
    ds = load_folder(img_dir, lab_dir)
    assert [Path(f).name for f in ds.filenames] == ["a.png"]


# --------------------------------------------------------------------------- class names
def test_class_names_given(tmp_path):
    img_dir, lab_dir, _, _ = _make(tmp_path, k=3)
    ds = load_folder(img_dir, lab_dir, class_names=["bg", "cat", "dog"])
    assert ds.class_names == ("bg", "cat", "dog")
    ds = load_folder(img_dir, lab_dir, class_names=["bg", "cat", "dog", "bird"])
    assert ds.n_classes == 4
    with pytest.raises(ValueError, match="outside the 2 classes"):
        load_folder(img_dir, lab_dir, class_names=["bg", "cat"])


def test_ignore_index_is_not_checked_against_class_names(tmp_path):
    img_dir, lab_dir = tmp_path / "i", tmp_path / "l"
    lab = _labels(0, 2)
    lab[0, 0] = 255
    _save(_rgb(0), img_dir / "x.png")
    _save(lab, lab_dir / "x.png")
    ds = load_folder(img_dir, lab_dir, class_names=["a", "b"])
    assert ds.labels[0][0, 0] == 255


# --------------------------------------------------------------------------- no labels
def test_no_labels_dir(tmp_path):
    img_dir, _, imgs, _ = _make(tmp_path, names=("a", "b"))
    ds = load_folder(img_dir)
    assert ds.labels is None
    assert len(ds) == 2
    np.testing.assert_array_equal(ds.images[1], imgs["b"])
    assert ds.class_names == ()
    table = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], np.uint8)
    assert load_folder(img_dir, colormap=table).class_names == ("0", "1", "2")


def test_images_of_every_kind(tmp_path):
    img_dir = tmp_path / "i"
    rgb = np.kron(_rgb(0, 4, 4), np.ones((4, 4, 1), np.uint8))  # smooth enough for JPEG
    _save(rgb, img_dir / "a.jpg", quality=95)
    _save(rgb, img_dir / "b.jpeg", quality=95)
    gray = rgb[..., 0].copy()
    _save(gray, img_dir / "c.png")
    _save(np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]), img_dir / "d.png")
    _save(rgb, img_dir / "e.bmp")
    ds = load_folder(img_dir)
    names = [Path(f).name for f in ds.filenames]
    assert names == ["a.jpg", "b.jpeg", "c.png", "d.png", "e.bmp"]
    for im, fn in zip(ds.images[:2], ds.filenames[:2], strict=True):
        assert im.shape == rgb.shape and im.dtype == np.uint8
        with Image.open(fn) as decoded:
            np.testing.assert_array_equal(im, np.asarray(decoded.convert("RGB")))
        assert np.abs(im.astype(int) - rgb).mean() < 30  # JPEG is lossy, but close
    np.testing.assert_array_equal(ds.images[2], gray)
    np.testing.assert_array_equal(ds.images[3], rgb)  # alpha dropped
    np.testing.assert_array_equal(ds.images[4], rgb)


def test_limit_and_n_jobs(tmp_path):
    img_dir, lab_dir, _, _ = _make(tmp_path, names=tuple("abcdef"))
    full = load_folder(img_dir, lab_dir)
    par = load_folder(img_dir, lab_dir, n_jobs=2)
    for a, b in zip(full.labels + full.images, par.labels + par.images, strict=True):
        np.testing.assert_array_equal(a, b)
    lim = load_folder(img_dir, lab_dir, limit=2)
    assert lim.filenames == full.filenames[:2]
    with pytest.raises(ValueError, match="limit"):
        load_folder(img_dir, lab_dir, limit=0)


def test_missing_or_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_folder(tmp_path / "empty")
    img_dir, _, _, _ = _make(tmp_path, names=("a",))
    with pytest.raises(FileNotFoundError, match="labels_dir"):
        load_folder(img_dir, tmp_path / "absent_labels")


def test_a_truncated_image_is_named(tmp_path):
    from PIL import Image

    from hybridseg.datasets import load_folder

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"a\.png cannot be read as an image"):
        load_folder(tmp_path)
