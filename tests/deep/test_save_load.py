"""hybridseg.save / load with torch networks inside: CNN segmenters, Pipelines ending in a
dense CRF, the CRF-as-RNN segmenter, and CNNSegmenter.save's own files."""

import io
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.pipeline import Pipeline  # noqa: E402

import hybridseg  # noqa: E402
from hybridseg._persistence import read_header  # noqa: E402
from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.deep import CNNSegmenter, load_pretrained  # noqa: E402


def _toy(n=3, h=32, w=40):
    rng = np.random.default_rng(0)
    X, y = [], []
    for _ in range(n):
        lab = np.zeros((h, w), np.uint8)
        lab[:, w // 2:] = 1
        X.append(np.stack([lab * 150 + rng.integers(0, 60, (h, w))] * 3, -1).astype(np.uint8))
        y.append(lab)
    return X, y


@pytest.fixture(scope="module")
def cnn():
    X, y = _toy()
    seg = CNNSegmenter("unet", model_options={"widths": (4, 8)}, epochs=1, batch_size=2,
                       device="cpu", random_state=0).fit(X, y)
    return seg, X


def test_cnn_pipeline_round_trip(tmp_path, cnn):
    seg, X = cnn
    pipe = Pipeline([("cnn", seg), ("crf", DenseCRF(n_iter=2).fit(seg.transform(X)))])
    path = hybridseg.save(pipe, tmp_path / "p.hseg")
    header = read_header(path)
    assert header["versions"]["torch"] == torch.__version__
    assert [n["class"].rsplit(".", 1)[1] for n in header["networks"]] == ["UNet"]
    assert header["networks"][0]["parameters"] == sum(
        p.numel() for p in seg.model_.parameters())
    assert "tensors.pt" in zipfile.ZipFile(path).namelist()
    back = hybridseg.load(path)
    np.testing.assert_array_equal(pipe.predict_proba(X[:1])[0], back.predict_proba(X[:1])[0])
    net = back.named_steps["cnn"].model_
    assert all(isinstance(p, torch.nn.Parameter) for p in net.parameters())
    assert back.named_steps["cnn"].device_.type == "cpu"


def test_tensors_are_stored_once_and_apart_from_the_pickle(tmp_path, cnn):
    seg, _ = cnn
    path = hybridseg.save(seg, tmp_path / "s.hseg")
    with zipfile.ZipFile(path) as zf:
        pkl = zf.read("estimator.pkl")
        tensors = torch.load(io.BytesIO(zf.read("tensors.pt")), weights_only=True)
    state = seg.model_.state_dict()
    n_bytes = sum(t.numel() * t.element_size() for t in state.values())
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == n_bytes
    biggest = max(state.values(), key=lambda t: t.numel())
    assert biggest.numpy().tobytes() not in pkl  # the weights are not in the pickle


def test_cnnsegmenter_files_are_read_too(tmp_path, cnn):
    seg, X = cnn
    seg.save(tmp_path / "own.pt")
    # CNNSegmenter.save writes hybridseg.save's one format
    assert read_header(tmp_path / "own.pt")["estimator"].endswith("CNNSegmenter")
    back = hybridseg.load(tmp_path / "own.pt")
    assert isinstance(back, CNNSegmenter)
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], back.predict_proba(X[:1])[0])
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a hybridseg model file"):
        hybridseg.load(tmp_path / "other.pt")


def test_crfrnn_segmenter_round_trip(tmp_path, scene):
    im, _ = scene
    seg = load_pretrained("camvid-unet-crfrnn", device="cpu")
    back = hybridseg.load(hybridseg.save(seg, tmp_path / "c.hseg"))
    np.testing.assert_array_equal(seg.predict_proba([im])[0], back.predict_proba([im])[0])
