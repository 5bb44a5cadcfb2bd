"""CRFRNNSegmenter: the staged schedule, starting from a fitted CNNSegmenter, outputs at
any size, save/load and pickling, clone, and bad input."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from hybridseg.deep import CNNSegmenter, CRFRNNSegmenter  # noqa: E402
from hybridseg.utils.estimator_checks import parametrize_with_image_checks  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
SMALL = {"widths": (4, 8)}


def _unary(**kw):
    opts = dict(model_options=SMALL, epochs=1, batch_size=2, device="cpu", random_state=0)
    return CNNSegmenter("unet", **{**opts, **kw})


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
    seg = CRFRNNSegmenter(_unary(epochs=2), epochs=2, n_iter=2).fit(X, y)
    assert len(seg.unary_loss_curve_) == 2 and len(seg.loss_curve_) == 2
    assert seg.unary_.model_ is seg.model_.unary  # the unary part, trained end to end
    assert seg.unary_.predict(X[:1])[0].shape == X[0].shape[:2]
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
    seg = CRFRNNSegmenter(cnn, epochs=1, n_iter=2).fit(X, y)
    assert seg.unary_loss_curve_ == [] and len(seg.loss_curve_) == 1
    np.testing.assert_array_equal(seg.mean_, cnn.mean_)
    for k, v in cnn.model_.state_dict().items():  # the fitted CNN is not changed
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="same scale"):
        CRFRNNSegmenter(cnn, epochs=1, train_params={"scale": 0.5}).fit(X, y)
    with pytest.raises(ValueError, match="'batch_size' parameter of CNNSegmenter"):
        CRFRNNSegmenter(cnn, epochs=1, train_params={"batch_size": 0}).fit(X, y)
    with pytest.raises(ValueError, match="train_params may not set"):
        CRFRNNSegmenter(cnn, epochs=1, train_params={"model": "fcn"}).fit(X, y)


def test_save_load_and_pickle(tmp_path):
    X, y = _data(n=2)
    seg = CRFRNNSegmenter(_unary(), epochs=1, n_iter=2).fit(X, y)
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
    seg = CRFRNNSegmenter(cnn, epochs=1, n_iter=2).fit(X, y)
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
    # clone unfits a plain fitted start, which the clone then trains in its first stage;
    # FrozenEstimator keeps it fitted through clone.
    assert len(clone(seg).fit(X, y).unary_loss_curve_) == 1
    frozen = clone(CRFRNNSegmenter(FrozenEstimator(cnn), epochs=1, n_iter=2)).fit(X, y)
    np.testing.assert_allclose(frozen.predict_proba(X[:1])[0], seg.predict_proba(X[:1])[0],
                               atol=1e-5)


def test_bad_crf_params():
    X, y = _data(n=2)
    with pytest.raises(ValueError, match="crf_params has unknown keys"):
        CRFRNNSegmenter(_unary(), crf_params={"sigma": 3}).fit(X, y)
    with pytest.raises(ValueError, match="'epochs' parameter of CRFRNNSegmenter"):
        CRFRNNSegmenter(epochs=-1).fit(X, y)
    with pytest.raises(ValueError, match="train_params has unknown keys"):
        CRFRNNSegmenter(_unary(), train_params={"sigma": 3}).fit(X, y)
    with pytest.raises(TypeError, match="unexpected keyword"):
        CRFRNNSegmenter(sigma=3)


def test_layer_learning_rate_and_the_start_as_epoch_zero():
    X, y = _data()
    cnn = CNNSegmenter("unet", model_options=SMALL, epochs=2, batch_size=2, device="cpu",
                       random_state=0).fit(X, y)
    common = dict(epochs=2, n_iter=2)
    frozen = CRFRNNSegmenter(cnn, crf_lr=0, **common).fit(X, y)
    assert frozen.crf_parameters()["bilateral_weight"] == 10.0
    np.testing.assert_array_equal(frozen.crf_parameters()["compat"], -np.eye(2))
    slow = CRFRNNSegmenter(cnn, crf_lr=1e-4, **common).fit(X, y).crf_parameters()
    fast = CRFRNNSegmenter(cnn, crf_lr=1e-1, **common).fit(X, y).crf_parameters()
    assert abs(fast["bilateral_weight"] - 10) > 10 * abs(slow["bilateral_weight"] - 10)
    # Epoch 0 is the start: the epoch kept is the best of the start and every epoch.
    kept = CRFRNNSegmenter(cnn, end_to_end_lr=50.0, crf_lr=50.0,
                           train_params={"early_stopping": True},
                           **common).fit(X, y, X_val=X, y_val=y)
    scores = [kept.initial_validation_score_, *kept.validation_scores_]
    assert kept.best_validation_score_ == max(scores)
    assert kept.best_epoch_ == int(np.argmax(scores))


def test_the_unary_is_composed_and_tuned_through_nested_parameters():
    from sklearn.model_selection import GridSearchCV

    X, y = _data(n=4)
    seg = CRFRNNSegmenter(_unary(), epochs=1, n_iter=1)
    assert seg.get_params()["unary__lr"] == 1e-3
    seg.set_params(unary__lr=5e-3)
    assert seg.unary.lr == 5e-3
    search = GridSearchCV(seg, {"unary__lr": [1e-3, 1e-2]}, cv=2).fit(X, y)
    assert search.best_params_["unary__lr"] in (1e-3, 1e-2)
    # fit never changes the unary it was given
    assert not hasattr(seg.unary, "model_")


def test_the_earlier_keywords_still_work_with_a_warning():
    X, y = _data(n=2)
    with pytest.warns(FutureWarning, match="deprecated"):
        old = CRFRNNSegmenter("unet", model_options=SMALL, unary_epochs=1, epochs=1,
                              n_iter=2, batch_size=2, device="cpu", random_state=0)
    assert isinstance(old.unary, CNNSegmenter)
    assert old.unary.epochs == 1 and old.unary.batch_size == 2 and old.epochs == 1
    new = CRFRNNSegmenter(_unary(), epochs=1, n_iter=2)
    np.testing.assert_array_equal(old.fit(X, y).predict_proba(X[:1])[0],
                                  new.fit(X, y).predict_proba(X[:1])[0])
    # with a fitted start, the earlier keywords were the end-to-end stage's settings
    cnn = _unary().fit(X, y)
    with pytest.warns(FutureWarning):
        started = CRFRNNSegmenter(cnn, epochs=1, batch_size=1, early_stopping=True)
    assert started.unary is cnn
    # as before, the settings not given are CNNSegmenter's defaults, not the start's
    assert started.train_params == {"batch_size": 1, "early_stopping": True,
                                    "device": "auto", "random_state": None}
    with pytest.warns(FutureWarning):
        started.set_params(lr=5e-3)
    assert started.train_params["lr"] == 5e-3
    # the given unary's own epochs stay when unary_epochs is not given
    with pytest.warns(FutureWarning):
        kept = CRFRNNSegmenter(_unary(epochs=5), batch_size=4)
    assert kept.unary.epochs == 5 and kept.unary.batch_size == 4


def test_settings_follow_train_params_after_fit_and_both_stages_hold_out_the_same_images():
    X, y = _data(n=4)
    seg = CRFRNNSegmenter(_unary(early_stopping=True, validation_fraction=0.5,
                                 random_state=None), epochs=1, n_iter=1).fit(X, y)
    # the end-to-end lr defaults to the unary's lr / 10; one seed drives both stages
    assert isinstance(seg.unary_.random_state, int)
    plain = seg.predict_proba(X[:1])[0]
    seg.set_params(train_params={"tta": True})
    assert seg.unary_.tta and not np.array_equal(plain, seg.predict_proba(X[:1])[0])
    with pytest.raises(ValueError, match="may not set 'epochs'"):
        CRFRNNSegmenter(_unary(), train_params={"epochs": 3}).fit(X, y)


@parametrize_with_image_checks([CRFRNNSegmenter(_unary(), epochs=1, n_iter=1)])
def test_image_checks(estimator, check):
    check(estimator)


def test_cross_fitted_unaries():
    X, y = _data(n=4)
    seg = CRFRNNSegmenter(_unary(), epochs=1, n_iter=1, train_params={"cv": 2})
    U = seg.fit_transform(X, y)
    assert len(U) == 4 and U.scores[0].shape == (32, 40, 2)
    assert hasattr(seg, "model_") and seg.unary_.cv == 2
