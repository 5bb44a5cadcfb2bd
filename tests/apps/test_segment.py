"""``hybridseg segment`` and ``hybridseg.segment``: outputs, resume, bad input, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import hybridseg
from hybridseg.apps._segment import SegmentReport, segment
from hybridseg.apps.cli import main
from hybridseg.classical import PixelClassifier
from hybridseg.datasets import load_sample
from hybridseg.datasets._base import read_image
from hybridseg.dummy import DummySegmenter

K_SAMPLE = 11


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im)


def _tree(root):
    """Relative paths of every file under ``root``, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file())


def _stamps(root):
    """``{relative path: (bytes, mtime_ns)}`` of every file under ``root``."""
    return {rel: ((Path(root) / rel).read_bytes(), (Path(root) / rel).stat().st_mtime_ns)
            for rel in _tree(root)}


def _temps(root):
    return [p for p in Path(root).rglob(".*") if p.is_file()]


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def pixel_model(tmp_path_factory, sample):
    """A small colour PixelClassifier fitted on two tiny sample images, saved."""
    X = [im[::8, ::8] for im in sample.images[:2]]
    y = [lab[::8, ::8] for lab in sample.labels[:2]]
    seg = PixelClassifier(classifier=LogisticRegression(max_iter=300), sigmas=(1, 2),
                          max_samples=2000, cv=None, random_state=0, n_classes=K_SAMPLE)
    seg.fit(X, y)
    path = tmp_path_factory.mktemp("models") / "pixel.hseg"
    hybridseg.save(seg, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory, sample):
    """A nested folder of tiny images: png, jpg, tif, bmp, a gray png; hidden files."""
    root = tmp_path_factory.mktemp("images")
    (root / "street" / "day").mkdir(parents=True)
    (root / ".hidden").mkdir()
    ims = [im[::12, ::12] for im in sample.images]
    Image.fromarray(ims[0]).save(root / "a.png")
    Image.fromarray(ims[1]).save(root / "b.jpg", quality=90)
    Image.fromarray(ims[2]).save(root / "street" / "c.tif")
    Image.fromarray(ims[3]).save(root / "street" / "day" / "d.bmp")
    Image.fromarray(ims[4][..., 1]).save(root / "street" / "gray.png")
    Image.fromarray(ims[5]).save(root / ".hidden" / "e.png")
    Image.fromarray(ims[5]).save(root / ".f.png")
    (root / "notes.txt").write_text("not an image")
    return root


EXPECTED = ["a.png", "b.png", "street/c.png", "street/day/d.png", "street/gray.png"]


def _expected_labels(model_path, image_path):
    model = hybridseg.load(model_path)
    return model.predict([read_image(image_path)])[0]


def test_writes_label_maps_equal_to_predict(tmp_path, pixel_model, images):
    out = tmp_path / "out"
    report = segment(images, out, pixel_model, verbose=False)
    assert isinstance(report, SegmentReport) and report.ok
    assert (report.n_inputs, report.written, report.skipped) == (5, 5, 0)
    assert report.seconds > 0 and report.images_per_second > 0
    assert _tree(out) == EXPECTED
    sources = ["a.png", "b.jpg", "street/c.tif", "street/day/d.bmp", "street/gray.png"]
    for rel, src in zip(EXPECTED, sources):
        labels = _png(out / rel)
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, _expected_labels(pixel_model, images / src))
    d = report.to_dict()
    assert d["written"] == 5 and d["failed"] == [] and d["images_per_second"] > 0
    assert "5 written, 0 skipped (existed), 0 failed" in report.summary()


def test_uint16_label_maps_when_more_than_255_classes(tmp_path):
    # Quadrants of classes 0, 100, 280 and 299 of 300: a spatial prior predicts them back.
    y = np.zeros((4, 4), np.int64)
    y[:2, 2:], y[2:, :2], y[2:, 2:] = 100, 280, 299
    seg = DummySegmenter("spatial_prior", grid_size=2, alpha=0.0, n_classes=300).fit(
        [np.zeros((4, 4, 3))], [y])
    model = tmp_path / "dummy300.hseg"
    hybridseg.save(seg, model)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "in" / "x.png")
    report = segment(tmp_path / "in", tmp_path / "out", model, save_proba=True,
                     verbose=False)
    assert report.ok
    labels = _png(tmp_path / "out" / "x.png")
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, seg.predict([np.zeros((6, 8, 3))])[0])
    assert set(np.unique(labels)) == {0, 100, 280, 299}
    assert np.load(tmp_path / "out" / "x.npy").shape == (6, 8, 300)


def test_save_proba_float16(tmp_path, pixel_model, images):
    out = tmp_path / "out"
    assert segment(images, out, pixel_model, save_proba=True, verbose=False).ok
    assert _tree(out) == sorted(EXPECTED + [r[:-4] + ".npy" for r in EXPECTED])
    model = hybridseg.load(pixel_model)
    image = read_image(images / "street" / "c.tif")
    proba = np.load(out / "street" / "c.npy")
    assert proba.dtype == np.float16 and proba.shape == (*image.shape[:2], K_SAMPLE)
    np.testing.assert_allclose(proba, model.predict_proba([image])[0], atol=1e-3)


def test_existing_outputs_are_kept_and_skipped(tmp_path, pixel_model, images):
    out = tmp_path / "out"
    (out / "street").mkdir(parents=True)
    (out / "street" / "c.png").write_bytes(b"the user's own file")
    old = time.time() - 3600  # an hour ago: a rewrite would show in the mtime
    os.utime(out / "street" / "c.png", (old, old))
    report = segment(images, out, pixel_model, verbose=False)
    assert (report.written, report.skipped) == (4, 1)
    assert (out / "street" / "c.png").read_bytes() == b"the user's own file"
    for rel in _tree(out):
        os.utime(out / rel, (old, old))
    before = _stamps(out)
    again = segment(images, out, pixel_model, verbose=False)
    assert (again.written, again.skipped, again.failed) == (0, 5, [])
    assert _stamps(out) == before
    # --save-proba with the .png there: only the .npy is written, the .png kept.
    with_proba = segment(images, out, pixel_model, save_proba=True, verbose=False)
    assert (with_proba.written, with_proba.skipped) == (5, 0)
    assert {rel: v for rel, v in _stamps(out).items() if rel.endswith(".png")} == before
    assert len(list(out.rglob("*.npy"))) == 5
    # --overwrite recomputes everything.
    report = segment(images, out, pixel_model, overwrite=True, verbose=False)
    assert (report.written, report.skipped) == (5, 0)
    np.testing.assert_array_equal(_png(out / "street" / "c.png"),
                                  _expected_labels(pixel_model, images / "street" / "c.tif"))
    assert all(os.stat(out / rel).st_mtime > old + 60 for rel in EXPECTED)
    assert not _temps(out)


def test_stale_temporaries_removed_others_kept(tmp_path, pixel_model, images):
    out = tmp_path / "out"
    (out / "street").mkdir(parents=True)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = [out / f".a.png.{dead}.tmp", out / "street" / f".c.npy.{dead}.tmp"]
    kept = [out / ".notes.tmp", out / "a.png.tmp", out / f".a.png.{dead}.tmp.bak",
            out / f".a.jpg.{dead}.tmp",
            # named like a temporary, but of no output this run writes: a user's file
            out / f".mine.png.{dead}.tmp", out / "street" / f".a.png.{dead}.tmp"]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert segment(images, out, pixel_model, verbose=False).ok
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"x" for p in kept)


def test_glob_input_and_single_file(tmp_path, pixel_model, images):
    out = tmp_path / "out"
    report = segment(str(images / "**" / "*.png"), out, pixel_model, verbose=False)
    assert report.written == 2 and _tree(out) == ["a.png", "street/gray.png"]
    out2 = tmp_path / "out2"
    assert segment(str(images / "street" / "*" / "*.bmp"), out2, pixel_model,
                   verbose=False).ok
    assert _tree(out2) == ["day/d.png"]
    out3 = tmp_path / "out3"
    assert segment(images / "b.jpg", out3, pixel_model, verbose=False).written == 1
    assert _tree(out3) == ["b.png"]
    with pytest.raises(ValueError, match="no image"):
        segment(str(images / "*.gif"), out, pixel_model, verbose=False)


def test_parallel_equals_in_process(tmp_path, pixel_model, images):
    one, two = tmp_path / "one", tmp_path / "two"
    assert segment(images, one, pixel_model, save_proba=True, verbose=False).ok
    report = segment(images, two, pixel_model, save_proba=True, n_jobs=2, verbose=False)
    assert report.ok and report.written == 5
    assert {k: v[0] for k, v in _stamps(one).items()} == \
        {k: v[0] for k, v in _stamps(two).items()}


def test_pipeline_model_and_refine(tmp_path, pixel_model, images):
    from hybridseg.crf import DenseCRF, GridCRF

    seg = hybridseg.load(pixel_model)
    image = read_image(images / "a.png")
    pipe = Pipeline([("pixel", seg), ("crf", DenseCRF().fit(seg.transform([image])))])
    path = tmp_path / "pipe.hseg"
    hybridseg.save(pipe, path)
    assert segment(images / "a.png", tmp_path / "pipe", path, verbose=False).ok
    np.testing.assert_array_equal(_png(tmp_path / "pipe" / "a.png"),
                                  pipe.predict([image])[0])
    assert segment(images / "a.png", tmp_path / "grid", pixel_model, refine="grid",
                   verbose=False).ok
    expected = GridCRF().refine(image, seg.predict_proba([image])[0], kind="proba")
    np.testing.assert_array_equal(_png(tmp_path / "grid" / "a.png"), expected.argmax(-1))


# ------------------------------------------------------------------------- bad input
def _bad_folder(root, sample):
    root.mkdir()
    good = sample.images[0][::8, ::8]  # 45x60
    Image.fromarray(good).save(root / "good.png")
    Image.fromarray(good).save(root / "good2.jpg")
    Image.fromarray(good[..., 0]).save(root / "gray.png")
    Image.fromarray(good[:8, :12]).save(root / "tiny.png")
    data = (root / "good.png").read_bytes()
    (root / "corrupt.png").write_bytes(data[: len(data) // 2])
    (root / "text.png").write_text("this is not a PNG\n")
    return root


@pytest.fixture(scope="module")
def unet_model(tmp_path_factory):
    pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("unet") / "unet.hseg"
    hybridseg.save(hybridseg.deep.load_pretrained("camvid-unet", device="cpu"), path)
    return path


def test_bad_inputs_reported_by_name_others_written(tmp_path, sample, unet_model, capsys):
    src = _bad_folder(tmp_path / "in", sample)
    out = tmp_path / "out"
    report = segment(src, out, unet_model, verbose=True)
    assert not report.ok and report.written == 2
    # each failure names the input by its path, which can be opened as it is
    assert all(os.path.isfile(path) for path, _ in report.failed)
    failed = {os.path.basename(path): msg for path, msg in report.failed}
    assert sorted(failed) == ["corrupt.png", "gray.png", "text.png", "tiny.png"]
    assert failed["gray.png"] == "has 1 channel, the model takes 3"
    assert "smaller than the smallest side the model takes (16 pixels" in failed["tiny.png"]
    assert failed["text.png"].startswith("cannot be read: cannot identify image file")
    assert failed["corrupt.png"].startswith("cannot be read:")
    assert _tree(out) == ["good.png", "good2.png"]
    err = capsys.readouterr().err
    for name in failed:
        assert f"{src / name}: {failed[name]}" in err
    assert (f"2 written, 0 skipped (existed), 4 failed: {src / 'corrupt.png'}, "
            f"{src / 'gray.png'}") in err
    assert "Traceback" not in err
    # The CLI: the same failures, exit status 1, nothing written again.
    before = _stamps(out)
    assert main(["segment", str(src), str(out), "--model", str(unet_model), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "gray.png: has 1 channel, the model takes 3" in err
    assert "0 written, 2 skipped (existed), 4 failed" in err
    assert _stamps(out) == before


def test_bad_inputs_classical_model(tmp_path, sample, pixel_model):
    # A classical model takes a gray image (it repeats the channel); the others fail.
    src = _bad_folder(tmp_path / "in", sample)
    report = segment(src, tmp_path / "out", pixel_model, verbose=False)
    assert [os.path.basename(p) for p, _ in report.failed] == ["corrupt.png", "text.png"]
    assert report.written == 4


def test_fatal_setup_errors(tmp_path, pixel_model, images, capsys):
    out_file = tmp_path / "out.png"
    out_file.write_bytes(b"precious")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        segment(images, out_file, pixel_model, verbose=False)
    assert out_file.read_bytes() == b"precious"
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="no image"):
        segment(empty, tmp_path / "o1", pixel_model, verbose=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        segment(tmp_path / "missing", tmp_path / "o1", pixel_model, verbose=False)
    with pytest.raises(FileNotFoundError, match=r"model file .* does not exist"):
        segment(images, tmp_path / "o1", tmp_path / "nope.hseg", verbose=False)
    not_ours = tmp_path / "model.hseg"
    not_ours.write_text("hello")
    with pytest.raises(ValueError, match="is not a hybridseg model file"):
        segment(images, tmp_path / "o1", not_ours, verbose=False)
    with pytest.raises(ValueError, match="OUTPUT must not be the INPUT"):
        segment(images, images, pixel_model, verbose=False)
    assert not (tmp_path / "o1").exists()
    # Two inputs that would write the same output: refused before anything runs.
    clash = tmp_path / "clash"
    clash.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(clash / "a.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(clash / "a.jpg")
    with pytest.raises(ValueError, match=r"a\.jpg and a\.png would both be written to"):
        segment(clash, tmp_path / "o2", pixel_model, verbose=False)
    assert not (tmp_path / "o2").exists()
    # The CLI: one line each, exit status 1.
    for argv, msg in [
        ([str(images), str(out_file)], "exists and is not a folder"),
        ([str(empty), str(tmp_path / "o3")], "no image"),
        ([str(images), str(tmp_path / "o3"), "--model", str(not_ours)],
         "is not a hybridseg model file"),
    ]:
        if "--model" not in argv:
            argv = [*argv, "--model", str(pixel_model)]
        assert main(["segment", *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("hybridseg segment: error:") and msg in err
        assert len(err.splitlines()) == 1


def test_argument_errors(tmp_path, pixel_model, images):
    kw = dict(verbose=False)
    with pytest.raises(ValueError, match="refine must be one of"):
        segment(images, tmp_path / "o", pixel_model, refine="crf", **kw)
    with pytest.raises(ValueError, match="n_jobs must be"):
        segment(images, tmp_path / "o", pixel_model, n_jobs=0, **kw)
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        segment(images, tmp_path / "o", pixel_model, overwrite="yes", **kw)
    with pytest.raises(TypeError, match=r"model must be a path.*hybridseg\.save"):
        segment(images, tmp_path / "o", hybridseg.load(pixel_model), **kw)
    with pytest.raises(ValueError, match="scheduler must be an address"):
        segment(images, tmp_path / "o", pixel_model, scheduler="localhost", **kw)
    with pytest.raises(ValueError, match="local:N"):
        segment(images, tmp_path / "o", pixel_model, scheduler="local:zero", **kw)


def test_missing_dask_names_the_extra(tmp_path, pixel_model, images, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'hybridseg\[dask\]'"):
        segment(images, tmp_path / "o", pixel_model, scheduler="local:2", verbose=False)
    assert main(["segment", str(images), str(tmp_path / "o"), "--model", str(pixel_model),
                 "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert "pip install 'hybridseg[dask]'" in capsys.readouterr().err


def test_cli_writes_report_json(tmp_path, pixel_model, images, capsys):
    report = tmp_path / "report.json"
    assert main(["segment", str(images), str(tmp_path / "out"), "--model", str(pixel_model),
                 "--save-proba", "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "segment: 5 images, 0 done already (kept), 5 to segment in this process" in err
    assert "5 written, 0 skipped (existed), 0 failed" in err
    assert json.loads(report.read_text())["written"] == 5


# ------------------------------------------------------------------ killed and resumed
SLOW_MODEL = '''
import time

from hybridseg.dummy import DummySegmenter


class SlowSegmenter(DummySegmenter):
    """A spatial prior that takes its time, so that a run can be killed halfway."""

    def predict_proba(self, X):
        time.sleep(0.15)
        return super().predict_proba(X)
'''


@pytest.mark.slow
def test_killed_run_resumes(tmp_path, sample, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "slowseg.py").write_text(textwrap.dedent(SLOW_MODEL))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    from slowseg import SlowSegmenter

    y = [lab[::12, ::12] for lab in sample.labels]
    seg = SlowSegmenter("spatial_prior", grid_size=8).fit(
        [im[::12, ::12] for im in sample.images], y)
    model = tmp_path / "slow.hseg"
    hybridseg.save(seg, model)
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    n = 30
    for i in range(n):
        sub = src / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24 + i, 32, 3), dtype=np.uint8)).save(
            sub / f"im{i:02d}.png")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "hybridseg", "segment", str(src), str(out),
           "--model", str(model), "--save-proba", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.rglob("*.png"))) < 8:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the run wrote nothing in two minutes"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert 8 <= len(done) < n
    # Whatever is visible under a .png/.npy name is whole.
    expected = {}
    for p in sorted(src.rglob("*.png")):
        rel = p.relative_to(src).as_posix()
        image = read_image(p)
        expected[rel] = (seg.predict([image])[0], seg.predict_proba([image])[0])
    for rel in done:
        np.testing.assert_array_equal(_png(out / rel), expected[rel][0])
    for p in out.rglob("*.npy"):
        np.load(p)
    before = _stamps(out)
    before = {rel: v for rel, v in before.items() if not rel.split("/")[-1].startswith(".")}
    # Run again: the rest is written, what existed is untouched, no temporary left.
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{n - len(done)} written, {len(done)} skipped (existed), 0 failed" in \
        result.stderr
    after = _stamps(out)
    assert {rel: after[rel] for rel in before} == before
    assert not _temps(out)
    assert _tree(out) == sorted([r for r in expected] + [r[:-4] + ".npy" for r in expected])
    for rel, (labels, proba) in expected.items():
        np.testing.assert_array_equal(_png(out / rel), labels)
        np.testing.assert_array_equal(np.load(out / (rel[:-4] + ".npy")),
                                      proba.astype(np.float16))


# ------------------------------------------------------------------------------ Dask
@pytest.mark.slow
def test_dask_local_cluster_identical_to_local(tmp_path, pixel_model, images):
    distributed = pytest.importorskip("distributed")
    kw = dict(refine="dense", save_proba=True, verbose=False)
    assert segment(images, tmp_path / "in_process", pixel_model, **kw).ok
    assert segment(images, tmp_path / "local", pixel_model, n_jobs=2, **kw).ok
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        report = segment(images, tmp_path / "dask", pixel_model, scheduler=client, **kw)
        assert report.ok and report.written == 5
        # The address form, on the same cluster: everything exists, all skipped.
        again = segment(images, tmp_path / "dask", pixel_model,
                        scheduler=cluster.scheduler_address, **kw)
        assert (again.written, again.skipped) == (0, 5)
    dask = {k: v[0] for k, v in _stamps(tmp_path / "dask").items()}
    # Two single-thread workers either way: the same bytes, probabilities included.
    assert {k: v[0] for k, v in _stamps(tmp_path / "local").items()} == dask
    # In this process numba uses both cores, and DenseCRF sums its lattice in one chunk
    # per thread: the probabilities may differ in the last bit, the labels do not.
    in_process = {k: v[0] for k, v in _stamps(tmp_path / "in_process").items()}
    assert in_process.keys() == dask.keys()
    for rel in EXPECTED:
        assert in_process[rel] == dask[rel]
        npy = rel[:-4] + ".npy"
        np.testing.assert_allclose(np.load(tmp_path / "in_process" / npy),
                                   np.load(tmp_path / "dask" / npy), atol=2e-3)


@pytest.mark.slow
def test_cli_scheduler_local_n(tmp_path, pixel_model, images, capsys):
    pytest.importorskip("distributed")
    assert segment(images, tmp_path / "local", pixel_model, verbose=False).ok
    assert main(["segment", str(images), str(tmp_path / "dask"), "--model",
                 str(pixel_model), "--scheduler", "local:2"]) == 0
    err = capsys.readouterr().err
    assert "on a Dask cluster (2 worker threads)" in err
    assert "5 written, 0 skipped (existed), 0 failed" in err
    assert _stamps(tmp_path / "local").keys() == _stamps(tmp_path / "dask").keys()
    for rel in EXPECTED:
        assert (tmp_path / "local" / rel).read_bytes() == (tmp_path / "dask" / rel).read_bytes()


def test_subprocess_not_ours_model(tmp_path, images):
    bogus = tmp_path / "bogus.hseg"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(bogus, format="PNG")
    result = subprocess.run(
        [sys.executable, "-m", "hybridseg", "segment", str(images), str(tmp_path / "out"),
         "--model", str(bogus)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"hybridseg segment: error: {bogus} is not a hybridseg "
                                     "model file (written by hybridseg.save)")
    assert not (tmp_path / "out").exists()


def test_workers_that_cannot_load_the_model_stop_the_run(tmp_path, sample, images,
                                                         monkeypatch, capsys):
    # A model whose class only this process could import: the header is fine, so the
    # run starts, and the first worker that fails to load it stops the run clearly.
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "ghostseg.py").write_text(
        "from hybridseg.dummy import DummySegmenter\n\n\n"
        "class GhostSegmenter(DummySegmenter):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    from ghostseg import GhostSegmenter

    seg = GhostSegmenter().fit([sample.images[0][::8, ::8]], [sample.labels[0][::8, ::8]])
    model = tmp_path / "ghost.hseg"
    hybridseg.save(seg, model)
    (tmp_path / "mods" / "ghostseg.py").unlink()
    monkeypatch.delitem(sys.modules, "ghostseg")
    assert main(["segment", str(images), str(tmp_path / "out"), "--model", str(model),
                 "--n-jobs", "2", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hybridseg segment: error: the workers cannot load the model "
                          f"{model}: {model} needs the module 'ghostseg', which cannot "
                          "be imported here")
    assert "--python-path DIR" in err and len(err.splitlines()) == 1


def test_label_maps_are_uint8_then_uint16_and_refuse_more_than_png_holds():
    from hybridseg.base import labels_from_proba

    for k, dtype in ((2, np.uint8), (255, np.uint8), (256, np.uint16), (65536, np.uint16)):
        proba = np.zeros((1, 2, k), np.float32)
        proba[0, 1, k - 1] = 1
        labels = labels_from_proba(proba, wide_dtype=np.uint16)
        assert labels.dtype == dtype and labels.tolist() == [[0, k - 1]]
    assert labels_from_proba(np.zeros((1, 1, 256))).dtype == np.int32  # what predict gives
    with pytest.raises(ValueError, match="65537 classes: a uint16 label map holds at most "
                                         "65536"):
        labels_from_proba(np.zeros((1, 1, 65537), np.float32), wide_dtype=np.uint16)


def test_report_and_output_paths_that_are_taken(tmp_path, images, pixel_model):
    precious = tmp_path / "precious.json"
    precious.write_text('{"mine": 1}')
    assert main(["segment", str(images), str(tmp_path / "out"), "--model", str(pixel_model),
                 "--report", str(precious), "--quiet"]) != 0
    assert precious.read_text() == '{"mine": 1}'  # never written over without --overwrite
    # a folder at an output path is a failure, not a skip
    out = tmp_path / "out2"
    (out / "a.png").mkdir(parents=True)
    assert main(["segment", str(images), str(out), "--model", str(pixel_model),
                 "--quiet"]) == 1
    assert sorted(_tree(out)) == sorted(set(EXPECTED) - {"a.png"})


def test_a_glob_does_not_follow_folder_link_loops(tmp_path, pixel_model, images):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(images, src)
    (src / "street" / "loop").symlink_to(src, target_is_directory=True)
    report = segment(str(src / "**" / "*.png"), tmp_path / "out", pixel_model, verbose=False)
    assert report.ok and report.n_inputs == 2  # a.png and street/gray.png, each once
    assert _tree(tmp_path / "out") == ["a.png", "street/gray.png"]


def test_local_workers_end_with_a_killed_run(tmp_path, pixel_model, images):
    """A SIGKILL of `hybridseg segment --n-jobs 2` left its worker processes running for a
    minute or more; they now end within about a second."""
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    many = tmp_path / "many"
    many.mkdir()
    src = sorted(p for p in images.rglob("*.png") if not p.name.startswith("."))[0]
    for i in range(400):
        (many / f"im{i:03d}.png").write_bytes(src.read_bytes())
    proc = subprocess.Popen([sys.executable, "-m", "hybridseg", "segment", str(many),
                             str(tmp_path / "out"), "--model", str(pixel_model),
                             "--n-jobs", "2", "--quiet"])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            workers = psutil.Process(proc.pid).children(recursive=True)
            if workers and any((tmp_path / "out").glob("*.png")):
                break  # the workers are at work
        if proc.poll() is not None:
            pytest.skip("the run ended before it could be killed")
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers, "no worker processes were started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"{len(alive)} workers outlived the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_python_path_lets_the_workers_import_a_users_module(tmp_path, sample, images,
                                                             monkeypatch):
    """A model whose class lives in the user's own module: --python-path makes it
    importable here and in the worker processes."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "mineseg.py").write_text(
        "from hybridseg.dummy import DummySegmenter\n\n\n"
        "class MineSegmenter(DummySegmenter):\n    pass\n")
    monkeypatch.syspath_prepend(str(mods))
    from mineseg import MineSegmenter

    seg = MineSegmenter().fit([sample.images[0][::8, ::8]], [sample.labels[0][::8, ::8]])
    model = tmp_path / "mine.hseg"
    hybridseg.save(seg, model)
    monkeypatch.delitem(sys.modules, "mineseg")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(mods)])
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    assert main(["segment", str(images), str(tmp_path / "out"), "--model", str(model),
                 "--n-jobs", "2", "--quiet", "--python-path", str(mods),
                 "--device", "cpu"]) == 0
    assert len(list((tmp_path / "out").rglob("*.png"))) == 5  # every visible image
    assert main(["segment", str(images), str(tmp_path / "o2"), "--model", str(model),
                 "--python-path", str(tmp_path / "absent")]) == 1
