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


def test_started_segmenter_saves_its_start_once_and_clones_frozen(tmp_path):
    from sklearn.frozen import FrozenEstimator

    X, y = _data(n=2)
    # The default U-Net (2 MB of weights), so that the weights dominate the file sizes.
    cnn = CNNSegmenter("unet", epochs=1, batch_size=2, device="cpu",
                       random_state=0).fit(X, y)
    seg = CRFRNNSegmenter(cnn, epochs=1, n_iter=2, batch_size=2, device="cpu",
                          random_state=0).fit(X, y)
    cnn.save(tmp_path / "cnn.pt")
    seg.save(tmp_path / "s.pt")
    # The start is stored as an architecture: the file holds one copy of the weights.
    assert (tmp_path / "s.pt").stat().st_size < 1.5 * (tmp_path / "cnn.pt").stat().st_size
    back = CRFRNNSegmenter.load(tmp_path / "s.pt")
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], back.predict_proba(X[:1])[0])
    again = pickle.loads(pickle.dumps(back))
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], again.predict_proba(X[:1])[0])
    with pytest.raises(ValueError, match="pass the fitted CNNSegmenter itself"):
        back.fit(X, y)
    # clone unfits a plain fitted start; FrozenEstimator keeps it through clone.
    with pytest.raises(Exception, match="not fitted"):
        clone(seg).fit(X, y)
    frozen = clone(CRFRNNSegmenter(FrozenEstimator(cnn), epochs=1, n_iter=2, batch_size=2,
                                   device="cpu", random_state=0)).fit(X, y)
    np.testing.assert_allclose(frozen.predict_proba(X[:1])[0], seg.predict_proba(X[:1])[0],
                               atol=1e-5)


def test_bad_crf_params():
    X, y = _data(n=2)
    with pytest.raises(ValueError, match="crf_params has unknown keys"):
        CRFRNNSegmenter("unet", model_options=SMALL, crf_params={"sigma": 3},
                        device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="unary_epochs"):
        CRFRNNSegmenter(unary_epochs=-1).fit(X, y)


def test_layer_learning_rate_and_the_start_as_epoch_zero():
    X, y = _data()
    cnn = CNNSegmenter("unet", model_options=SMALL, epochs=2, batch_size=2, device="cpu",
                       random_state=0).fit(X, y)
    common = dict(epochs=2, n_iter=2, batch_size=2, device="cpu", random_state=0)
    frozen = CRFRNNSegmenter(cnn, crf_lr=0, **common).fit(X, y)
    assert frozen.crf_parameters()["bilateral_weight"] == 10.0
    np.testing.assert_array_equal(frozen.crf_parameters()["compat"], -np.eye(2))
    slow = CRFRNNSegmenter(cnn, crf_lr=1e-4, **common).fit(X, y).crf_parameters()
    fast = CRFRNNSegmenter(cnn, crf_lr=1e-1, **common).fit(X, y).crf_parameters()
    assert abs(fast["bilateral_weight"] - 10) > 10 * abs(slow["bilateral_weight"] - 10)
    # Epoch 0 is the start: the epoch kept is the best of the start and every epoch.
    kept = CRFRNNSegmenter(cnn, end_to_end_lr=50.0, crf_lr=50.0, early_stopping=True,
                           **common).fit(X, y, X_val=X, y_val=y)
    scores = [kept.initial_validation_score_, *kept.validation_scores_]
    assert kept.best_validation_score_ == max(scores)
    assert kept.best_epoch_ == int(np.argmax(scores))
