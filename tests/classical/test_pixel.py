"""PixelClassifier: the estimator checks, balanced sampling, cross fitting, pipelines."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from hybridseg import Unaries
from hybridseg.classical._pixel import PROBA_FLOOR, PixelClassifier, sample_pixels
from hybridseg.crf import DenseCRF, GridCRF
from hybridseg.utils.estimator_checks import parametrize_with_image_checks


def small_trees(**kw):
    return ExtraTreesClassifier(n_estimators=5, max_depth=6, **kw)


def fast(**kw):
    """A PixelClassifier small enough for tests."""
    kw.setdefault("classifier", small_trees())
    kw.setdefault("sigmas", (1, 2))
    kw.setdefault("max_samples", 2000)
    kw.setdefault("random_state", 0)
    return PixelClassifier(**kw)


def scenes(rng, n=4, h=18, w=22, k=3, channels=3):
    """Images whose colour tells the class (plus noise), with a few void pixels."""
    palette = np.array([[30, 60, 90], [200, 40, 40], [40, 200, 120], [220, 220, 40]])
    X, y = [], []
    for i in range(n):
        lab = np.zeros((h + i, w - i), np.uint8)
        lab[:, (w - i) // 3:] = 1
        lab[(h + i) // 2:, 2 * (w - i) // 3:] = 2 % k
        image = palette[lab] + rng.normal(0, 12, (*lab.shape, 3))
        image = image.clip(0, 255).astype(np.uint8)
        if channels is None:
            image = image.mean(-1).astype(np.uint8)
        lab[rng.random(lab.shape) < 0.03] = 255
        X.append(image)
        y.append(lab)
    return X, y


@parametrize_with_image_checks([
    fast(),
    fast(classifier=RandomForestClassifier(n_estimators=4, max_depth=5), color="rgb",
         superpixels=6, class_weight=None, sigmas=(1.5,)),
])
def test_image_checks(estimator, check):
    check(estimator)


def test_fitted_attributes(rng):
    X, y = scenes(rng)
    seg = fast().fit(X, y)
    assert seg.n_classes_ == 3 and seg.classes_.tolist() == [0, 1, 2]
    assert seg.n_channels_ == 3
    assert seg.n_features_ == len(seg.feature_names_) == seg.classifier_.n_features_in_
    assert seg.feature_names_[0] == "intensity_s1" and "lab_a_s1" in seg.feature_names_
    assert seg.classifier_ is not seg.classifier
    assert seg.classifier.get_params()["random_state"] is None  # never mutated
    assert seg.classifier_.get_params()["random_state"] is not None
    assert seg.score(X, y) > 0.9
    default = PixelClassifier(max_samples=500, random_state=0).fit(X[:2], y[:2])
    assert isinstance(default.classifier_, RandomForestClassifier)
    assert default.classifier_.n_estimators == 50
    assert default.classifier is None


def test_absent_classes_get_the_floor_and_no_zero_anywhere(rng):
    X, y = scenes(rng)
    seg = fast(n_classes=5).fit(X, y)
    for p in seg.predict_proba(X):
        assert p.shape[-1] == 5 and p.min() > 0
        np.testing.assert_allclose(p[..., 3:], PROBA_FLOOR / (1 + 5 * PROBA_FLOOR), rtol=1e-5)
        np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)


# --------------------------------------------------------------------------- sampling
def test_balanced_sampling_balances_and_never_draws_void(rng):
    lab = np.zeros((60, 80), np.int64)
    lab[:, 50:] = 1  # 1800 pixels
    lab[:3, :10] = 2  # 30 pixels: fewer than a share
    lab[10:20, :20] = 255
    labels = [lab, lab[::-1].copy()]
    picks = sample_pixels(labels, 3, max_samples=1500, balanced=True, ignore_index=255,
                          rng=np.random.default_rng(0))
    drawn = np.concatenate([m.ravel()[p] for m, p in zip(labels, picks)])
    counts = np.bincount(drawn, minlength=256)
    assert counts[255] == 0
    assert counts[2] == 60  # every pixel of the rare class, from both images
    assert counts[0] == counts[1] == (1500 - 60) // 2
    for p in picks:
        assert np.all(np.diff(p) > 0)  # sorted, no pixel twice
    # Uniform sampling follows the class frequencies instead.
    picks = sample_pixels(labels, 3, max_samples=1500, balanced=False, ignore_index=255,
                          rng=np.random.default_rng(0))
    drawn = np.concatenate([m.ravel()[p] for m, p in zip(labels, picks)])
    counts = np.bincount(drawn, minlength=256)
    assert counts[255] == 0 and counts.sum() == 1500
    freq = np.bincount(np.concatenate([m.ravel() for m in labels]), minlength=256)[:3]
    np.testing.assert_allclose(counts[:3] / 1500, freq / freq.sum(), atol=0.04)
    # More than there are: every labelled pixel, once.
    picks = sample_pixels(labels, 3, max_samples=None, balanced=True, ignore_index=255,
                          rng=np.random.default_rng(0))
    assert sum(p.size for p in picks) == 2 * int((lab != 255).sum())


def test_balanced_sampling_reaches_the_classifier(rng):
    X, y = scenes(rng, n=2, h=30, w=40)

    class Recorder(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            self.seen_ = np.bincount(y)
            return super().fit(X, y)

    seg = fast(classifier=Recorder(max_iter=50), max_samples=600).fit(X, y)
    assert seg.classifier_.seen_.tolist() == [200, 200, 200]


# --------------------------------------------------------------------------- cross fitting
def swapped_world(n=4):
    """Gray scenes where each image maps its own two gray levels to the classes the
    neighbouring images' levels do NOT have: a 1-NN model is perfect on images it saw
    and wrong on the others."""
    X, y = [], []
    for i in range(n):
        lab = np.zeros((10, 12), np.uint8)
        lab[:, 6:] = 1
        if i % 2:
            lab = 1 - lab
        image = np.where(lab == 0, 40 + 6 * i, 160 + 6 * i).astype(np.uint8)
        if i % 2:
            image = np.where(lab == 1, 40 + 6 * i, 160 + 6 * i).astype(np.uint8)
        X.append(image)
        y.append(lab)
    return X, y


def test_out_of_fold_predictions_do_not_see_their_image():
    X, y = swapped_world()
    seg = PixelClassifier(KNeighborsClassifier(n_neighbors=1), sigmas=(1,), position=False,
                          max_samples=None, class_weight=None, cv=4, random_state=0)
    in_sample = seg.fit(X, y).predict(X)
    assert all((p == lab).all() for p, lab in zip(in_sample, y))
    U = clone(seg).fit_transform(X, y)
    assert isinstance(U, Unaries) and U.kind == "proba" and len(U) == 4
    oof_acc = np.mean([(s.argmax(-1) == lab).mean() for s, lab in zip(U.scores, y)])
    assert oof_acc < 0.5
    # Image i's scores are those of a model fitted on the other images only.
    for i in range(4):
        others = [j for j in range(4) if j != i]
        alone = clone(seg).fit([X[j] for j in others], [y[j] for j in others])
        np.testing.assert_array_equal(U.scores[i], alone.predict_proba([X[i]])[0])
    assert U.images[0] is not None and U.images[0].shape == X[0].shape


def test_fit_transform_ends_fitted_like_fit(rng):
    X, y = scenes(rng, n=5)
    a = fast(cv=2)
    U = a.fit_transform(X, y)
    b = fast(cv=2).fit(X, y)
    for p, q in zip(a.predict_proba(X), b.predict_proba(X)):
        np.testing.assert_array_equal(p, q)
    assert [s.shape for s in U.scores] == [p.shape for p in b.predict_proba(X)]
    # With fewer images than folds, one fold per image; a splitter may be given.
    U3 = fast(cv=10).fit_transform(X[:3], y[:3])
    assert len(U3) == 3
    U_split = fast(cv=KFold(2, shuffle=True, random_state=0)).fit_transform(X, y)
    assert len(U_split) == 5


def test_fit_transform_needs_two_images(rng):
    X, y = scenes(rng, n=1)
    with pytest.raises(ValueError, match="at least 2 images"):
        fast().fit_transform(X, y)
    with pytest.raises(ValueError, match="'cv'"):
        fast(cv=1).fit_transform(*scenes(rng, n=3))

    class Overlapping:
        def split(self, X):
            yield np.arange(1, 3), np.arange(0, 2)
            yield np.arange(0, 1), np.arange(1, 3)

    with pytest.raises(ValueError, match="exactly one test fold"):
        fast(cv=Overlapping()).fit_transform(*scenes(rng, n=3))


# --------------------------------------------------------------------------- determinism
def test_random_state_and_n_jobs_do_not_change_the_output(rng):
    X, y = scenes(rng, n=4)
    clf = RandomForestClassifier(n_estimators=6, max_depth=6)
    ref = fast(classifier=clf).fit(X, y).predict_proba(X)
    for params in ({}, {"n_jobs": 2}):
        seg = fast(classifier=clf, **params).fit(X, y)
        for p, q in zip(seg.predict_proba(X), ref):
            np.testing.assert_array_equal(p, q)
    U1 = fast(classifier=clf, cv=2).fit_transform(X, y)
    U2 = fast(classifier=clf, cv=2, n_jobs=2).fit_transform(X, y)
    for p, q in zip(U1.scores, U2.scores):
        np.testing.assert_array_equal(p, q)
    other = fast(classifier=clf, random_state=1).fit(X, y).predict_proba(X)
    assert any(not np.array_equal(p, q) for p, q in zip(other, ref))


# --------------------------------------------------------------------------- channels
def test_gray_and_colour_mix(rng):
    X, y = scenes(rng, n=3)
    gray = X[0].mean(-1).astype(np.uint8)
    seg = fast().fit([gray, X[1], X[2]], y)
    assert seg.n_channels_ == 3
    as_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(seg.predict_proba([gray])[0], seg.predict_proba([as_rgb])[0])
    with pytest.raises(ValueError, match=r"X\[0\] has 4 channel"):
        seg.predict_proba([np.zeros((5, 5, 4), np.uint8)])
    gray_model = fast().fit([im.mean(-1) / 255 for im in X], y)
    assert gray_model.n_channels_ == 1
    with pytest.raises(ValueError, match="fitted on images with 1"):
        gray_model.predict(X[:1])
    with pytest.raises(ValueError, match=r"X\[1\] has 4 channel"):
        fast().fit([X[0], np.zeros((*X[1].shape[:2], 4))], y[:2])


# --------------------------------------------------------------------------- bad input
def test_bad_input(rng):
    X, y = scenes(rng, n=2)
    with pytest.raises(ValueError, match="X is empty"):
        fast().fit([], [])
    with pytest.raises(ValueError, match=r"y\[1\] has shape"):
        fast().fit(X, [y[0], y[1][:-1]])
    with pytest.raises(ValueError, match=r"labels 3.*in \[0, 3\)"):
        fast(n_classes=3).fit(X, [y[0], np.full_like(y[1], 3)])
    with pytest.raises(TypeError, match="integer labels"):
        fast().fit(X, [y[0] + 0.5, y[1]])
    nan = X[0].astype(float)
    nan[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X\[0\] holds NaN"):
        fast().fit([nan, X[1]], y)
    with pytest.raises(TypeError, match="predict_proba"):
        fast(classifier=SVC()).fit(X, y)
    with pytest.raises(TypeError, match="classifier must be"):
        fast(classifier="forest").fit(X, y)
    with pytest.raises(ValueError, match="sigmas must be positive"):
        fast(sigmas=(0,)).fit(X, y)
    with pytest.raises(ValueError, match="'class_weight'"):
        fast(class_weight="auto").fit(X, y)
    with pytest.raises(ValueError, match="'max_samples'"):
        fast(max_samples=0).fit(X, y)
    with pytest.raises(ValueError, match="'color'"):
        fast(color="hsv").fit(X, y)
    with pytest.raises(ValueError, match="no features"):
        fast(intensity=False, edges=False, texture=False, position=False,
             color=None).fit(X, y)
    with pytest.raises(ValueError, match="no labelled pixel"):
        fast().fit(X, [np.full_like(lab, 255) for lab in y])


# --------------------------------------------------------------------------- pipelines
@pytest.mark.parametrize("crf", [DenseCRF(n_iter=3, max_iter=2), GridCRF(weight_grid=[0.0, 1.0])])
def test_pipeline_tunes_a_crf_on_out_of_fold_unaries(rng, crf):
    X, y = scenes(rng, n=4)
    pipe = Pipeline([("pixel", fast(cv=2)), ("crf", crf)]).fit(X, y)
    proba = pipe.predict_proba(X)
    assert len(proba) == 4
    for p, im in zip(proba, X):
        assert p.shape == (*im.shape[:2], 3) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(-1), 1, atol=1e-4)
    labels = pipe.predict(X)
    assert np.mean([(p == lab)[lab != 255].mean() for p, lab in zip(labels, y)]) > 0.8
    assert pipe.named_steps["crf"].n_classes_ == 3


# --------------------------------------------------------------------------- real images
def small_forest():
    return RandomForestClassifier(n_estimators=10, max_depth=16, min_samples_leaf=5,
                                  max_samples=0.5)


def test_beats_the_spatial_prior_on_the_embedded_sample():
    from hybridseg.datasets import load_sample
    from hybridseg.dummy import DummySegmenter

    s = load_sample("camvid")
    train = [i for i, part in enumerate(s.split) if part == "train"]
    test = [i for i, part in enumerate(s.split) if part == "test"]
    X, y = [s.images[i] for i in train], [s.labels[i] for i in train]
    Xt, yt = [s.images[i] for i in test], [s.labels[i] for i in test]
    seg = PixelClassifier(small_forest(), max_samples=20_000, n_jobs=2, random_state=0)
    score = seg.fit(X, y).score(Xt, yt)
    prior = DummySegmenter(strategy="spatial_prior").fit(X, y).score(Xt, yt)
    assert score > prior + 0.05, (score, prior)


@pytest.mark.data
def test_real_camvid_subset():
    import os
    from pathlib import Path

    from hybridseg.datasets import load_camvid
    from hybridseg.dummy import DummySegmenter

    # As tests/datasets/conftest.py: $HYBRIDSEG_DATA or <repo>/../shared/data.
    repo = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("HYBRIDSEG_DATA", repo / ".." / "shared" / "data"))
    root = (data if data.is_absolute() else repo / "tests" / data).resolve() / "camvid"
    if not all((root / sub).is_dir() for sub in ("train", "trainannot", "test", "testannot")):
        pytest.skip(f"real data not found at {root} (set HYBRIDSEG_DATA)")
    X, y = load_camvid(root, "train", return_X_y=True)
    Xt, yt = load_camvid(root, "test", return_X_y=True)
    X, y, Xt, yt = X[::40], y[::40], Xt[::60], yt[::60]
    seg = PixelClassifier(small_forest(), max_samples=30_000, n_jobs=2, random_state=0)
    score = seg.fit(X, y).score(Xt, yt)
    prior = DummySegmenter(strategy="spatial_prior").fit(X, y).score(Xt, yt)
    assert score > prior + 0.05, (score, prior)


def test_gray_images_with_only_colour_features_are_refused():
    X = [np.zeros((6, 7), np.uint8), np.ones((6, 7), np.uint8)]
    y = [np.zeros((6, 7), np.uint8), np.ones((6, 7), np.uint8)]
    seg = PixelClassifier(intensity=False, edges=False, texture=False, position=False)
    with pytest.raises(ValueError, match="no features for images with 1 channel"):
        seg.fit(X, y)


def test_images_read_outside_the_fitted_range_warn():
    import warnings

    rng = np.random.default_rng(0)
    X = [rng.integers(0, 255, (16, 20, 3), dtype=np.uint8) for _ in range(2)]
    y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    clf = PixelClassifier(max_samples=500, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict([x / 255.0 for x in X])  # the same reading: no warning
    with pytest.warns(UserWarning, match=r"X\[0\] \(float64\) is read in .*PixelClassifier"):
        clf.predict([x.astype(float) for x in X])  # 8-bit values as floats
