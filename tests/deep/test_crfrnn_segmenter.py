"""CRFRNNSegmenter: the staged schedule, starting from a fitted CNNSegmenter, outputs at
any size, save/load and pickling, clone, and bad input."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from hybridseg.deep import CNNSegmenter, CRFRNNSegmenter  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
SMALL = {"widths": (4, 8)}


def _data(n=4, h=32, w=40, seed=0):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        lab = np.zeros((h, w), np.uint8)
        lab[:, w // 2:] = 1
        img = (lab * 150 + rng.integers(0, 60, (h, w))).astype(np.uint8)
        X.append(np.stack([img, 255 - img, img], -1))
        y.append(lab)
    return X, y


def test_staged_training_and_predictions():
    X, y = _data()
    seg = CRFRNNSegmenter("unet", model_options=SMALL, unary_epochs=2, epochs=2, n_iter=2,
                          batch_size=2, device="cpu", random_state=0).fit(X, y)
    assert len(seg.unary_loss_curve_) == 2 and len(seg.loss_curve_) == 2
    p = seg.predict_proba([X[0][:29, :31]])[0]
    assert p.shape == (29, 31, 2)
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)
    params = seg.crf_parameters()
    assert params["compat"].shape == (2, 2)
    # The layer's parameters were trained: they moved from their starting values.
    assert params["bilateral_weight"] != 10.0 or params["gaussian_weight"] != 3.0
    assert not hasattr(clone(seg), "model_")


def test_starting_from_a_fitted_cnn_skips_the_first_stage():
    X, y = _data()
    cnn = CNNSegmenter("unet", model_options=SMALL, epochs=2, batch_size=2, device="cpu",
                       random_state=0).fit(X, y)
    before = {k: v.clone() for k, v in cnn.model_.state_dict().items()}
    seg = CRFRNNSegmenter(cnn, epochs=1, n_iter=2, batch_size=2, device="cpu",
                          random_state=0).fit(X, y)
    assert seg.unary_loss_curve_ == [] and len(seg.loss_curve_) == 1
    np.testing.assert_array_equal(seg.mean_, cnn.mean_)
    for k, v in cnn.model_.state_dict().items():  # the fitted CNN is not changed
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="same scale"):
        CRFRNNSegmenter(cnn, epochs=1, scale=0.5, device="cpu").fit(X, y)


def test_save_load_and_pickle(tmp_path):
    X, y = _data(n=2)
    seg = CRFRNNSegmenter("unet", model_options=SMALL, unary_epochs=1, epochs=1, n_iter=2,
                          batch_size=2, device="cpu", random_state=0).fit(X, y)
    seg.save(tmp_path / "s.pt")
    back = CRFRNNSegmenter.load(tmp_path / "s.pt")
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], back.predict_proba(X[:1])[0])
    again = pickle.loads(pickle.dumps(seg))
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], again.predict_proba(X[:1])[0])


def test_bad_crf_params():
    X, y = _data(n=2)
    with pytest.raises(ValueError, match="crf_params has unknown keys"):
        CRFRNNSegmenter("unet", model_options=SMALL, crf_params={"sigma": 3},
                        device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="unary_epochs"):
        CRFRNNSegmenter(unary_epochs=-1).fit(X, y)
