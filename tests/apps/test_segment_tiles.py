"""``segment`` on images above ``tile_above``: tile by tile, tiled outputs, resume by
tile, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

import hybridseg
from hybridseg.apps import _segment as seg_module
from hybridseg.apps._segment import segment
from hybridseg.apps.cli import main
from hybridseg.classical import PixelClassifier
from hybridseg.datasets import load_sample

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A pixel classifier without position features: what it gives a pixel depends on
    the pixels around it only, so tiles with a margin give the whole image's labels."""
    data = load_sample()
    seg = PixelClassifier(classifier=LogisticRegression(max_iter=300), sigmas=(1, 2),
                          max_samples=2000, cv=None, random_state=0, n_classes=11,
                          position=False)
    seg.fit([im[::8, ::8] for im in data.images[:2]],
            [lab[::8, ::8] for lab in data.labels[:2]])
    path = tmp_path_factory.mktemp("model") / "pixel.hseg"
    hybridseg.save(seg, path)
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 600x720 mosaic of sample images as a tiled TIFF, a zarr store and a PNG."""
    data = load_sample()
    image = np.concatenate([np.concatenate([im[:300, :360] for im in data.images[i:i + 2]],
                                           1) for i in (0, 2)], 0)
    root = tmp_path_factory.mktemp("big")
    tifffile.imwrite(root / "scene.tif", image, tile=(128, 128), compression="zlib")
    z = zarr.open_array(root / "store.zarr", mode="w", shape=image.shape,
                        chunks=(128, 128, 3), dtype="u1")
    z[:] = image
    Image.fromarray(image).save(root / "photo.png")
    return root, image


def _whole(model, image):
    return hybridseg.load(model).predict([image])[0]


def test_tiles_give_the_whole_images_labels_in_a_tiled_output(tmp_path, model, big):
    root, image = big
    out = tmp_path / "out"
    report = segment(root, out, model, tile_above=0, tile_size=256, verbose=False)
    assert report.ok and report.written == 3
    assert sorted(p.name for p in out.iterdir()) == ["photo.png", "scene.tif", "store.zarr"]
    want = _whole(model, image)
    with tifffile.TiffFile(out / "scene.tif") as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.shape == image.shape[:2] and page.dtype == np.uint8
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        np.testing.assert_array_equal(page.asarray(), want)
    np.testing.assert_array_equal(zarr.open_array(out / "store.zarr", mode="r")[:], want)
    with Image.open(out / "photo.png") as im:
        np.testing.assert_array_equal(np.asarray(im), want)
    # below the threshold the same TIFF is segmented whole, into a PNG
    small = segment(root / "scene.tif", tmp_path / "whole", model, verbose=False)
    assert small.written == 1
    with Image.open(tmp_path / "whole" / "scene.png") as im:
        np.testing.assert_array_equal(np.asarray(im), want)


def test_dense_crf_tiles_agree_with_the_whole_image(tmp_path, model, big):
    root, _ = big
    segment(root / "scene.tif", tmp_path / "tiled", model, refine="dense", tile_above=0,
            tile_size=300, verbose=False)
    segment(root / "scene.tif", tmp_path / "whole", model, refine="dense", verbose=False)
    tiled = tifffile.imread(tmp_path / "tiled" / "scene.tif")
    with Image.open(tmp_path / "whole" / "scene.png") as im:
        whole = np.asarray(im)
    assert (tiled == whole).mean() > 0.995


def test_an_interrupted_run_resumes_by_tile(tmp_path, model, big, monkeypatch, capsys):
    root, _ = big
    out = tmp_path / "out"
    calls = []
    predict = seg_module._predict_tile

    def interrupted(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(args[3])
        return predict(*args)

    monkeypatch.setattr(seg_module, "_predict_tile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segment(root / "scene.tif", out, model, tile_above=0, tile_size=160, verbose=False)
    parts = out / ".scene.tif.parts"
    done = sorted(p.name for p in parts.glob("r*.npy"))
    assert len(done) == 5 and not (out / "scene.tif").exists()
    assert json.loads((parts / "job.json").read_text())["tile_size"] == 160
    stamps = {p.name: p.stat().st_mtime_ns for p in parts.glob("r*.npy")}

    calls.clear()
    monkeypatch.setattr(seg_module, "_predict_tile", lambda *a: calls.append(a[3]) or
                        predict(*a))
    seen = {}
    real_load = np.load

    def load(path, *a, **k):  # the kept tiles are read as they are, not recomputed
        name = str(path).rsplit("/", 1)[-1]
        if name in stamps:
            seen[name] = (tmp_path / "out" / ".scene.tif.parts" / name).stat().st_mtime_ns
        return real_load(path, *a, **k)

    monkeypatch.setattr(np, "load", load)
    report = segment(root / "scene.tif", out, model, tile_above=0, tile_size=160)
    assert report.ok and report.written == 1
    assert len(calls) == 4 * 5 - 5  # 600x720 in 160-pixel tiles: 4 x 5
    assert seen == stamps
    assert "5 of 20 tiles done already (kept)" in capsys.readouterr().err
    assert not parts.exists() and [p.name for p in out.iterdir()] == ["scene.tif"]
    monkeypatch.undo()
    clean = segment(root / "scene.tif", tmp_path / "clean", model, tile_above=0,
                    tile_size=160, verbose=False)
    assert clean.ok
    np.testing.assert_array_equal(tifffile.imread(out / "scene.tif"),
                                  tifffile.imread(tmp_path / "clean" / "scene.tif"))


def test_parts_of_other_settings_are_discarded(tmp_path, model, big, capsys):
    root, _ = big
    out = tmp_path / "out"
    parts = out / ".scene.tif.parts"
    parts.mkdir(parents=True)
    (parts / "job.json").write_text(json.dumps({"tile_size": 99}))
    (parts / "r0000000_c0000000.npy").write_bytes(b"stale")
    report = segment(root / "scene.tif", out, model, tile_above=0, tile_size=256)
    assert report.ok
    assert "tiles of an earlier run with other settings were discarded" in \
        capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(out / "scene.tif"),
                                  _whole(model, big[1]))
    # an output that exists is kept and skipped, as for whole images
    before = (out / "scene.tif").stat().st_mtime_ns
    again = segment(root / "scene.tif", out, model, tile_above=0, verbose=False)
    assert again.skipped == 1 and (out / "scene.tif").stat().st_mtime_ns == before


def test_bad_input_writes_nothing(tmp_path, model, big):
    root, _ = big
    src = tmp_path / "in"
    src.mkdir()
    (src / "fake.tif").write_text("this is not a raster")
    tifffile.imwrite(src / "stack.tif", np.zeros((5, 40, 50), np.uint8),
                     photometric="minisblack")
    out = tmp_path / "out"
    report = segment(src, out, model, tile_above=0, tile_size=256, verbose=False)
    assert not report.ok and report.written == 0
    messages = dict(report.failed)
    assert "cannot be read" in messages[str(src / "fake.tif")]
    assert "stack" in messages[str(src / "stack.tif")]
    assert list(out.rglob("*")) == []
    for kwargs, match in [({"tile_size": 200, "refine": "dense"}, "larger than the tiles"),
                          ({"tile_size": 32}, "at least 64"),
                          ({"tile_above": -1}, "tile_above must be None"),
                          ({"tile_size": 1.5e3}, "tile_size must be an int")]:
        with pytest.raises(ValueError, match=match):
            segment(root, tmp_path / "never", model, verbose=False, **kwargs)
    assert not (tmp_path / "never").exists()


def test_cli_tile_options(tmp_path, model, big, capsys):
    root, image = big
    out = tmp_path / "out"
    code = main(["segment", str(root / "store.zarr"), str(out), "--model", str(model),
                 "--tile-above", "1e5", "--tile-size", "300", "--quiet"])
    assert code == 0
    np.testing.assert_array_equal(zarr.open_array(out / "store.zarr", mode="r")[:],
                                  _whole(model, image))
    with pytest.raises(SystemExit):
        main(["segment", str(root), str(out), "--model", str(model), "--tile-above", "x"])
    assert "whole number of pixels" in capsys.readouterr().err


@pytest.mark.slow
def test_tiles_of_one_image_on_a_dask_cluster_and_local_processes(tmp_path, model, big):
    pytest.importorskip("distributed")
    root, _ = big
    local = segment(root / "scene.tif", tmp_path / "local", model, tile_above=0,
                    tile_size=200, verbose=False)
    dist = segment(root / "scene.tif", tmp_path / "dask", model, tile_above=0,
                   tile_size=200, scheduler="local:2", verbose=False)
    procs = segment(root / "scene.tif", tmp_path / "procs", model, tile_above=0,
                    tile_size=200, n_jobs=2, verbose=False)
    assert local.ok and dist.ok and procs.ok
    want = tifffile.imread(tmp_path / "local" / "scene.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "dask" / "scene.tif"), want)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "procs" / "scene.tif"), want)


def test_a_run_killed_while_writing_the_output_writes_it_at_the_next_start(
        tmp_path, model, big, monkeypatch):
    root, image = big
    out = tmp_path / "out"

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(seg_module, "assemble", killed)
    with pytest.raises(KeyboardInterrupt):
        segment(root / "scene.tif", out, model, tile_above=0, tile_size=256, verbose=False)
    assert len(list((out / ".scene.tif.parts").glob("r*.npy"))) == 3 * 3
    monkeypatch.undo()
    monkeypatch.setattr(seg_module, "_predict_tile", killed)  # no tile is recomputed
    report = segment(root / "scene.tif", out, model, tile_above=0, tile_size=256,
                     verbose=False)
    assert report.ok and report.written == 1
    np.testing.assert_array_equal(tifffile.imread(out / "scene.tif"), _whole(model, image))
    assert [p.name for p in out.iterdir()] == ["scene.tif"]
