"""hybridseg.save / hybridseg.load: round trips of classical stages and Pipelines, the
file's header, atomic writes, and files that are not ours."""

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

import hybridseg
from hybridseg._persistence import FORMAT_VERSION, read_header
from hybridseg.classical import PixelClassifier
from hybridseg.crf import DenseCRF, GridCRF
from hybridseg.datasets import load_sample
from hybridseg.dummy import DummySegmenter


@pytest.fixture(scope="module")
def small():
    """Two training and one test crop of the embedded CamVid sample."""
    d = load_sample()
    X = [np.ascontiguousarray(im[::4, ::4]) for im in d.images]
    y = [lab[::4, ::4] for lab in d.labels]
    return X[:2], y[:2], X[4:5]


def test_pipeline_round_trip_predicts_the_same(tmp_path, small):
    X, y, Xt = small
    pixel = PixelClassifier(sigmas=(1, 4), max_samples=5000, cv=2, random_state=0)
    pipe = Pipeline([("pixel", pixel), ("crf", DenseCRF(n_iter=3))]).fit(X, y)
    path = hybridseg.save(pipe, tmp_path / "pipe.hseg")
    assert path == os.fspath(tmp_path / "pipe.hseg")
    back = hybridseg.load(path)
    assert isinstance(back, Pipeline)
    assert back.get_params()["crf__n_iter"] == 3
    for a, b in zip(pipe.predict_proba(Xt), back.predict_proba(Xt)):
        np.testing.assert_array_equal(a, b)
    header = read_header(path)
    assert header["format_version"] == FORMAT_VERSION
    assert header["estimator"] == "sklearn.pipeline.Pipeline"
    assert header["versions"]["hybridseg"] == hybridseg.__version__
    assert header["networks"] == [] and header["n_tensors"] == 0
    assert "tensors.pt" not in zipfile.ZipFile(path).namelist()


def test_a_grid_crf_pipeline_and_a_bare_segmenter_round_trip(tmp_path, small):
    X, y, Xt = small
    pipe = Pipeline([("prior", DummySegmenter(strategy="spatial_prior")),
                     ("crf", GridCRF(weight=2.0))]).fit(X, y)
    back = hybridseg.load(hybridseg.save(pipe, tmp_path / "g.hseg"))
    np.testing.assert_array_equal(pipe.predict(Xt)[0], back.predict(Xt)[0])
    seg = DummySegmenter(strategy="prior").fit(X, y)
    back = hybridseg.load(hybridseg.save(seg, tmp_path / "d.hseg"))
    np.testing.assert_array_equal(back.class_prior_, seg.class_prior_)


def test_existing_files_are_kept_unless_overwrite(tmp_path, small):
    X, y, _ = small
    seg = DummySegmenter().fit(X, y)
    path = tmp_path / "m.hseg"
    path.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        hybridseg.save(seg, path)
    assert path.read_bytes() == b"the user's file"
    hybridseg.save(seg, path, overwrite=True)
    assert isinstance(hybridseg.load(path), DummySegmenter)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.hseg"]  # no temporary left


def test_save_errors_leave_nothing_behind(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save.*does not pickle"):
        hybridseg.save(lambda x: x, tmp_path / "f.hseg")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="folder to save into does not exist"):
        hybridseg.save(DummySegmenter(), tmp_path / "missing" / "f.hseg")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        hybridseg.save(DummySegmenter(), tmp_path)
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        hybridseg.save(DummySegmenter(), 3)
    with pytest.raises(TypeError, match="overwrite must be a bool"):
        hybridseg.save(DummySegmenter(), tmp_path / "f.hseg", overwrite="yes")


def _rewrite_header(src, dst, **changes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "hybridseg-model.json":
                header = json.loads(data)
                header.update(changes)
                data = json.dumps(header)
            zout.writestr(name, data)


def test_load_refuses_files_that_are_not_ours(tmp_path, small):
    X, y, _ = small
    text = tmp_path / "notes.hseg"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="is not a hybridseg model file"):
        hybridseg.load(text)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="is not a hybridseg model file"):
        hybridseg.load(other)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(DummySegmenter()))
    with pytest.raises(ValueError, match="is not a hybridseg model file"):
        hybridseg.load(raw)
    good = hybridseg.save(DummySegmenter().fit(X, y), tmp_path / "good.hseg")
    _rewrite_header(good, tmp_path / "newer.hseg", format_version=FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match=r"format version 2 .*newer than this hybridseg"):
        hybridseg.load(tmp_path / "newer.hseg")
    _rewrite_header(good, tmp_path / "magic.hseg", magic="something else")
    with pytest.raises(ValueError, match="is not a hybridseg model file"):
        hybridseg.load(tmp_path / "magic.hseg")
    with pytest.raises(FileNotFoundError, match="no model file"):
        hybridseg.load(tmp_path / "absent.hseg")
    with pytest.raises(IsADirectoryError):
        hybridseg.load(tmp_path)


def test_a_damaged_pickle_is_reported(tmp_path, small):
    X, y, _ = small
    good = hybridseg.save(DummySegmenter().fit(X, y), tmp_path / "good.hseg")
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "bad.hseg", "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data[: len(data) // 2] if name == "estimator.pkl" else data)
    with pytest.raises(ValueError, match="is damaged"):
        hybridseg.load(tmp_path / "bad.hseg")


def test_a_classical_model_loads_without_torch(tmp_path, small):
    X, y, _ = small
    path = hybridseg.save(DummySegmenter().fit(X, y), tmp_path / "d.hseg")
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('no torch here')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import hybridseg, numpy as np\n"
            f"m = hybridseg.load({path!r})\n"
            "print(m.predict([np.zeros((3, 4, 3), np.uint8)])[0].shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "(3, 4) False"


def test_header_is_plain_json_in_a_zip(tmp_path, small):
    X, y, _ = small
    path = hybridseg.save(DummySegmenter().fit(X, y), tmp_path / "d.hseg")
    with zipfile.ZipFile(path) as zf:
        header = json.load(io.BytesIO(zf.read("hybridseg-model.json")))
    assert header["magic"] == "hybridseg-model"
    assert {"python", "numpy", "scikit-learn"} <= set(header["versions"])


def test_damaged_files_give_one_error_that_names_the_file(tmp_path, small):
    import json

    X, y, _ = small
    good = hybridseg.save(DummySegmenter(strategy="spatial_prior").fit(X, y),
                          tmp_path / "m.hseg")
    data = bytearray(open(good, "rb").read())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flipped.hseg").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flipped\.hseg"):
        hybridseg.load(tmp_path / "flipped.hseg")
    # a header whose format version is not an integer
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members["hybridseg-model.json"])
    header["format_version"] = "1"
    members["hybridseg-model.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(tmp_path / "odd.hseg", "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    with pytest.raises(ValueError, match=r"format version '1'.*not a positive integer"):
        hybridseg.load(tmp_path / "odd.hseg")


def test_classes_of_the_running_script_warn_at_save_and_are_named_at_load(tmp_path):
    """A class defined in a script (module __main__) pickles by that name: only a script
    that defines it can read the file. save warns; load elsewhere names the class."""
    script = tmp_path / "mine.py"
    script.write_text(
        "import sys, warnings\n"
        "import numpy as np\n"
        "import hybridseg\n"
        "from hybridseg.dummy import DummySegmenter\n\n\n"
        "class Mine(DummySegmenter):\n    pass\n\n\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    seg = Mine().fit([np.zeros((4, 4), np.uint8)], [np.zeros((4, 4), np.uint8)])\n"
        "    hybridseg.save(seg, sys.argv[1])\n"
        "print([str(x.message) for x in w])\n")
    model = tmp_path / "m.hseg"
    r = subprocess.run([sys.executable, str(script), str(model)], capture_output=True,
                       text=True, check=True)
    assert "refers to Mine defined in the running script (module __main__)" in r.stdout
    with pytest.raises(ValueError, match=r"needs 'Mine' from the script that wrote the "
                                         r"file \(module __main__\).*define it in a module"):
        hybridseg.load(model)
