"""The segmenter and refiner base classes, through the dummy estimators, as
scikit-learn sees them and on images."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from hybridseg import Unaries
from hybridseg.base import BaseRefiner, BaseSegmenter
from hybridseg.datasets import load_sample
from hybridseg.dummy import DummySegmenter, IdentityRefiner
from hybridseg.metrics import make_mean_iou_scorer, mean_iou
from hybridseg.utils import InvalidParameterError
from hybridseg.utils.estimator_checks import (
    parametrize_with_image_checks,
    sklearn_expected_failed_checks,
)

ESTIMATORS = [
    DummySegmenter(),
    DummySegmenter(strategy="most_frequent"),
    DummySegmenter(strategy="uniform"),
    DummySegmenter(strategy="spatial_prior", grid_size=8),
    IdentityRefiner(),
    IdentityRefiner(n_jobs=2),
]


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=sklearn_expected_failed_checks, xfail_strict=True
)
def test_sklearn_compatible(estimator, check):
    # scikit-learn's API checks (clone, get/set_params, nothing in __init__, unfitted
    # errors) must pass; its checks on (n_samples, n_features) matrices are expected to
    # fail, each with the image-shaped check that replaces it as the reason.
    check(estimator)


@parametrize_with_image_checks(ESTIMATORS)
def test_image_checks(estimator, check):
    check(estimator)


def test_expected_failures_name_real_checks():
    # Every check we mark as an expected failure must exist in scikit-learn, or the list
    # silently stops meaning anything when scikit-learn renames one.
    from sklearn.utils import estimator_checks as ec

    for name in sklearn_expected_failed_checks(DummySegmenter()):
        assert hasattr(ec, name.split("(")[0]), name


@pytest.fixture(scope="module")
def sample():
    return load_sample()


def _split(sample):
    train = [i for i, s in enumerate(sample.split) if s == "train"]
    test = [i for i, s in enumerate(sample.split) if s == "test"]
    pick = lambda seq, idx: [seq[i] for i in idx]  # noqa: E731
    return (pick(sample.images, train), pick(sample.labels, train),
            pick(sample.images, test), pick(sample.labels, test))


def test_spatial_prior_beats_global_prior_on_camvid_sample(sample):
    Xtr, ytr, Xte, yte = _split(sample)
    prior = DummySegmenter(n_classes=11).fit(Xtr, ytr)
    spatial = DummySegmenter("spatial_prior", n_classes=11).fit(Xtr, ytr)
    # Road scenes: position alone says sky at the top, road at the bottom.
    assert spatial.score(Xte, yte) > prior.score(Xte, yte) + 0.05
    assert prior.class_prior_.shape == (11,)
    np.testing.assert_allclose(prior.class_prior_.sum(), 1.0)


def test_pipeline_segmenter_then_refiner(sample):
    Xtr, ytr, Xte, yte = _split(sample)
    pipe = Pipeline([("seg", DummySegmenter("spatial_prior", n_classes=11)),
                     ("crf", IdentityRefiner())])
    pipe.fit(Xtr, ytr)
    labels = pipe.predict(Xte)
    alone = DummySegmenter("spatial_prior", n_classes=11).fit(Xtr, ytr).predict(Xte)
    for a, b in zip(labels, alone):
        np.testing.assert_array_equal(a, b)
    proba = pipe.predict_proba(Xte)
    assert proba[0].shape == (360, 480, 11) and proba[0].dtype == np.float32
    assert pipe.score(Xte, yte) == pytest.approx(mean_iou(yte, labels, n_classes=11))
    assert pipe.named_steps["crf"].n_classes_ == 11


def test_gridsearch_over_nested_parameters(sample):
    X, y = sample.images, sample.labels
    pipe = Pipeline([("seg", DummySegmenter(n_classes=11)), ("crf", IdentityRefiner())])
    search = GridSearchCV(
        pipe,
        {"seg__strategy": ["prior", "spatial_prior"], "seg__grid_size": [4, 16]},
        cv=KFold(3),
        scoring=make_mean_iou_scorer(),
    )
    search.fit(X, y)
    assert search.best_params_["seg__strategy"] == "spatial_prior"
    assert search.cv_results_["mean_test_score"].shape == (4,)
    # Default scoring (the estimator's score, mean IoU) agrees with the scorer.
    s1 = cross_val_score(pipe, X, y, cv=KFold(3))
    s2 = cross_val_score(pipe, X, y, cv=KFold(3), scoring=make_mean_iou_scorer())
    np.testing.assert_allclose(s1, s2)


def test_gridsearch_on_unaries_for_a_refiner(sample, rng):
    # Refiners are searched on Unaries: scikit-learn's splitters must slice them whole.
    X, y = sample.images, sample.labels
    U = DummySegmenter("spatial_prior", n_classes=11).fit(X, y).transform(X)
    search = GridSearchCV(IdentityRefiner(), {"n_jobs": [None, 2]}, cv=KFold(2))
    search.fit(U, y)
    assert isinstance(search.best_estimator_, IdentityRefiner)
    assert search.best_score_ > 0


def test_invalid_parameters_name_the_parameter():
    X = [np.zeros((4, 4), np.uint8)]
    y = [np.zeros((4, 4), np.uint8)]
    with pytest.raises(InvalidParameterError, match="'strategy' parameter of DummySegmenter"):
        DummySegmenter(strategy="mode").fit(X, y)
    with pytest.raises(ValueError, match="'grid_size'"):
        DummySegmenter(grid_size=0).fit(X, y)
    with pytest.raises(TypeError, match="'alpha'"):
        DummySegmenter(alpha="1").fit(X, y)
    with pytest.raises(ValueError, match="'n_jobs'"):
        IdentityRefiner(n_jobs=1.5).fit(Unaries(X, [np.ones((4, 4, 1))]))


def test_all_void_labels_raise():
    with pytest.raises(ValueError, match="no labelled pixel"):
        DummySegmenter().fit([np.zeros((3, 3))], [np.full((3, 3), 255, np.uint8)])


def test_labels_outside_declared_classes_raise():
    with pytest.raises(ValueError, match=r"labels 5.*\[0, 3\)"):
        DummySegmenter(n_classes=3).fit([np.zeros((3, 3))], [np.full((3, 3), 5)])


def test_refiner_logits_become_probabilities(rng):
    im = rng.integers(0, 255, (5, 6, 3)).astype(np.uint8)
    logits = rng.normal(size=(5, 6, 4)).astype(np.float32) * 10
    out = IdentityRefiner().refine(im, logits, kind="logits")
    e = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=1e-5)


def test_refiner_predict_n_jobs_equivalent(rng):
    images = [rng.integers(0, 255, (8 + i, 9, 3)).astype(np.uint8) for i in range(5)]
    scores = [rng.dirichlet(np.ones(3), size=im.shape[:2]) for im in images]
    U = Unaries(images, scores)
    one = IdentityRefiner().fit(U).predict(U)
    two = IdentityRefiner(n_jobs=2).fit(U).predict(U)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_base_classes_are_estimators_without_classifier_mixin():
    from sklearn.base import ClassifierMixin, is_classifier

    assert not issubclass(BaseSegmenter, ClassifierMixin)
    assert not issubclass(BaseRefiner, ClassifierMixin)
    assert not is_classifier(DummySegmenter())


def test_predict_label_dtype_widens_for_many_classes(rng):
    X = [np.zeros((4, 4), np.uint8)]
    y = [np.full((4, 4), 299, np.int32)]
    seg = DummySegmenter(strategy="most_frequent", ignore_index=-1).fit(X, y)
    lab = seg.predict(X)[0]
    assert lab.dtype == np.int32 and (lab == 299).all()
    assert clone(seg).get_params()["ignore_index"] == -1


def test_refiner_serialises_on_numbas_workqueue_layer(rng, monkeypatch):
    import joblib
    import numba

    from hybridseg.base import numba_threads_safe

    def no_threads(*args, **kwargs):
        raise AssertionError("threads used on the workqueue layer")

    images = [rng.random((6, 7)) for _ in range(3)]
    U = Unaries(images, [rng.random((6, 7, 2)) for _ in images], kind="logits")
    refiner = IdentityRefiner(n_jobs=2).fit(U)
    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    monkeypatch.setattr(joblib, "Parallel", no_threads)
    assert not numba_threads_safe()
    assert len(refiner.predict_proba(U)) == 3
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")
    assert numba_threads_safe()


def test_refiners_do_not_tune_on_in_sample_scores(sample):
    # A segmenter's plain fit_transform marks its scores in_sample; the CRFs then warn,
    # say how to tune on held-out scores, and keep their parameters as given.
    from hybridseg.base import InSampleScoresWarning
    from hybridseg.crf import DenseCRF, GridCRF

    Xtr, ytr, Xte, _ = _split(sample)
    seg = DummySegmenter("spatial_prior", n_classes=11)
    U = seg.fit_transform(Xtr, ytr)
    assert U.in_sample and U[:1].in_sample and U.to_logits().in_sample
    assert not seg.transform(Xte).in_sample
    for crf in (GridCRF(weight=2.0), DenseCRF(n_iter=1)):
        pipe = Pipeline([("seg", DummySegmenter("spatial_prior", n_classes=11)),
                         ("crf", crf)])
        with pytest.warns(InSampleScoresWarning, match=r"held-out images.*cv=3"):
            pipe.fit(Xtr, ytr)
        fitted = pipe.named_steps["crf"]
        assert fitted.n_classes_ == 11
        assert not hasattr(fitted, "weight_") and not hasattr(fitted, "kernel_weights_")
        assert fitted.transform(U).in_sample
    with pytest.raises(ValueError, match=r"compat='learn'.*held-out"), pytest.warns(
            InSampleScoresWarning):
        DenseCRF(compat="learn", n_iter=1).fit(U, ytr)
    # Held-out scores are tuned on, without a word.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", InSampleScoresWarning)
        GridCRF(weight_grid=[0.0, 1.0]).fit(seg.transform(Xtr), ytr)
