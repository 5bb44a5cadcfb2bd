"""Image-shaped estimator checks: scikit-learn's ``check_estimator`` for segmentation stages.

scikit-learn's common checks feed ``(n_samples, n_features)`` matrices, which an estimator
of images and label maps must refuse; the API checks among them (cloning, ``get_params``,
``set_params``, nothing set in ``__init__``, unfitted errors) still apply and pass. The
checks here test the same properties on images: fit returns self and is idempotent,
unfitted estimators raise ``NotFittedError``, outputs are per-pixel distributions at odd
and mixed sizes, inputs are not modified, read-only and non-contiguous arrays work,
pickling and cloning preserve behaviour, and bad input gets a clear ``ValueError`` or
``TypeError``.

Use them on your own stages::

    from hybridseg.utils.estimator_checks import parametrize_with_image_checks

    @parametrize_with_image_checks([MySegmenter(), MyRefiner()])
    def test_my_stages(estimator, check):
        check(estimator)

and pass ``sklearn_expected_failed_checks`` to scikit-learn's
``parametrize_with_checks(..., expected_failed_checks=...)`` to run its checks with the
tabular ones marked as expected failures, each with its reason.
"""

from __future__ import annotations

import pickle
from functools import partial

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ._unaries import Unaries


def _is_refiner(est):
    """A refiner (``hybridseg.base.RefinerMixin``'s role): it has ``refine``."""
    return callable(getattr(est, "refine", None))


def _is_segmenter(est):
    """A segmenter (``hybridseg.base.SegmenterMixin``'s role): ``predict_proba`` on
    images, no ``refine``."""
    return callable(getattr(est, "predict_proba", None)) and not _is_refiner(est)

__all__ = [
    "check_estimator_images",
    "parametrize_with_image_checks",
    "sklearn_expected_failed_checks",
]

_TABULAR = (
    "feeds an (n_samples, n_features) matrix; hybridseg estimators take images and label "
    "maps and refuse it with a clear error. The property is checked on images by "
    "hybridseg.utils.estimator_checks.{}"
)
# scikit-learn checks that cannot apply to estimators of images, with the image-shaped
# check of ours that covers the same property (or why none is needed).
_SKLEARN_TABULAR_CHECKS = {
    "check_complex_data": "check_bad_input",
    "check_dict_unchanged": "check_dict_unchanged",
    "check_dont_overwrite_parameters": "check_params_not_overwritten",
    "check_dtype_object": "check_bad_input",
    "check_estimator_sparse_array": "check_bad_input",
    "check_estimator_sparse_matrix": "check_bad_input",
    "check_estimator_sparse_tag": "check_bad_input",
    "check_estimators_dtypes": "check_input_dtypes",
    "check_estimators_empty_data_messages": "check_bad_input",
    "check_estimators_fit_returns_self": "check_fit_returns_self",
    "check_estimators_nan_inf": "check_bad_input",
    "check_estimators_overwrite_params": "check_params_not_overwritten",
    "check_estimators_pickle": "check_pickle_roundtrip",
    "check_estimators_pickle(readonly_memmap=True)": "check_readonly_and_strided_input",
    "check_f_contiguous_array_estimator": "check_readonly_and_strided_input",
    "check_fit1d": "check_bad_input",
    "check_fit2d_1feature": "check_odd_sizes",
    "check_fit2d_1sample": "check_odd_sizes",
    "check_fit2d_predict1d": "check_bad_input",
    "check_fit_check_is_fitted": "check_unfitted",
    "check_fit_idempotent": "check_fit_idempotent",
    "check_fit_score_takes_y": "check_score",
    "check_methods_sample_order_invariance": "check_subset_and_order_invariance",
    "check_methods_subset_invariance": "check_subset_and_order_invariance",
    "check_n_features_in": "check_odd_sizes (images have sizes, not a feature count)",
    "check_n_features_in_after_fitting": "check_odd_sizes (images have sizes, not a feature "
    "count)",
    "check_pipeline_consistency": "check_pickle_roundtrip and tests/test_base.py's Pipeline "
    "tests",
    "check_positive_only_tag_during_fit": "check_input_dtypes",
    "check_readonly_memmap_input": "check_readonly_and_strided_input",
    "check_requires_y_none": "check_bad_input",
    "check_transformer_data_not_an_array": "check_input_dtypes",
    "check_transformer_general": "check_transform",
    "check_transformer_general(readonly_memmap=True)": "check_readonly_and_strided_input",
    "check_transformer_preserve_dtypes": "check_transform (scores are always float32)",
}


def sklearn_expected_failed_checks(estimator):
    """The scikit-learn common checks that cannot apply to ``estimator``, with reasons.

    Returns
    -------
    expected : dict
        Check name to reason, for ``parametrize_with_checks(expected_failed_checks=...)``.
    """
    expected = {name: _TABULAR.format(ours) for name, ours in _SKLEARN_TABULAR_CHECKS.items()}
    if _is_segmenter(estimator):
        # A segmenter's fit takes images, so these two pass: a 1-D X and a sparse X are
        # refused with the ValueError / explicit message scikit-learn asks for. A
        # refiner's fit takes Unaries and refuses both with a TypeError instead.
        del expected["check_fit1d"], expected["check_estimator_sparse_tag"]
    return expected


# --------------------------------------------------------------------------- data
def _images(rng, sizes=((17, 23), (9, 31), (20, 20)), channels=3):
    out = []
    for h, w in sizes:
        shape = (h, w) if channels is None else (h, w, channels)
        out.append(rng.integers(0, 256, shape).astype(np.uint8))
    return out


def _labels(rng, images, n_classes=3, void=0.05):
    out = []
    for im in images:
        h, w = im.shape[:2]
        # Blocky labels that the image partly explains: left-right halves plus noise.
        lab = (np.arange(w)[None, :] * n_classes // w).repeat(h, 0).astype(np.uint8)
        flip = rng.random((h, w)) < 0.1
        lab[flip] = rng.integers(0, n_classes, flip.sum())
        lab[rng.random((h, w)) < void] = 255
        out.append(lab)
    return out


def _unaries(rng, images, n_classes=3, kind="proba"):
    scores = []
    for im in images:
        logits = rng.normal(size=(*im.shape[:2], n_classes)).astype(np.float32)
        if kind == "proba":
            e = np.exp(logits - logits.max(-1, keepdims=True))
            logits = e / e.sum(-1, keepdims=True)
        scores.append(logits)
    return Unaries(images, scores, kind=kind)


def _fit(est, rng, images=None):
    images = _images(rng) if images is None else images
    labels = _labels(rng, images)
    if _is_refiner(est):
        U = _unaries(rng, images)
        return est.fit(U, labels), U, labels
    return est.fit(images, labels), images, labels


def _fitted_clone(est, seed):
    """A fitted clone of ``est``, with the data (images or Unaries) and labels it saw."""
    return _fit(clone(est), np.random.default_rng(seed))


def _assert_distributions(proba, data, n_classes, where):
    shapes = [im.shape[:2] for im in (data.images if isinstance(data, Unaries) else data)]
    assert isinstance(proba, list), f"{where}: predict_proba must return a list"
    assert len(proba) == len(shapes), f"{where}: one output per image expected"
    for p, shape in zip(proba, shapes):
        assert isinstance(p, np.ndarray) and p.dtype == np.float32, (
            f"{where}: scores must be float32 ndarrays"
        )
        assert p.shape == (*shape, n_classes), f"{where}: expected {(*shape, n_classes)}"
        assert np.isfinite(p).all() and (p >= 0).all(), f"{where}: negative or NaN proba"
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4, err_msg=where)


# --------------------------------------------------------------------------- checks
def check_fit_returns_self(est):
    """``fit`` returns the estimator itself and sets ``n_classes_``."""
    est = clone(est)
    rng = np.random.default_rng(0)
    fitted, *_ = _fit(est, rng)
    assert fitted is est, "fit must return self"
    assert isinstance(est.n_classes_, int) and est.n_classes_ >= 1


def check_unfitted(est):
    """Prediction methods of an unfitted estimator raise ``NotFittedError``."""
    est = clone(est)
    rng = np.random.default_rng(1)
    images = _images(rng)
    data = _unaries(rng, images) if _is_refiner(est) else images
    for method in ("predict", "predict_proba", "transform"):
        try:
            getattr(est, method)(data)
        except NotFittedError:
            continue
        raise AssertionError(f"{method} of an unfitted estimator must raise NotFittedError")


def _input_limits(est):
    """What a fitted estimator accepts: the smallest image side, and whether its channel
    count is fixed by the training images. An estimator states them with the optional
    methods ``_min_image_side()`` (a CNN: its stride) and ``_fixed_channels()``; by
    default any size from 1x1 and any channel count."""
    side = est._min_image_side() if hasattr(est, "_min_image_side") else 1
    fixed = est._fixed_channels() if hasattr(est, "_fixed_channels") else False
    return int(side), bool(fixed)


def check_odd_sizes(est):
    """Outputs are per-pixel distributions at odd, mixed and tiny sizes, gray and colour.

    An estimator with a smallest image side (``_min_image_side``) gets sizes from there and
    must refuse a smaller image with a ``ValueError``; one whose channel count is fixed by
    training (``_fixed_channels``) gets colour only and must refuse a gray image."""
    rng = np.random.default_rng(2)
    est = clone(est)
    _fit(est, rng)
    side, fixed = _input_limits(est)
    if not _is_refiner(est):
        if side > 1:
            try:
                est.predict_proba(_images(rng, sizes=((side - 1, side + 3),)))
            except ValueError:
                pass
            else:
                raise AssertionError("an image smaller than _min_image_side() must raise "
                                     "a ValueError")
        if fixed:
            try:
                est.predict_proba(_images(rng, sizes=((side + 5, side + 7),), channels=None))
            except ValueError:
                pass
            else:
                raise AssertionError("an image of another channel count than the training "
                                     "images must raise a ValueError")
    for channels in (3,) if fixed else (3, None):
        sizes = [(max(h, side), max(w, side)) for h, w in ((1, 1), (7, 3), (33, 18), (5, 64))]
        images = _images(rng, sizes=sizes, channels=channels)
        data = _unaries(rng, images) if _is_refiner(est) else images
        proba = est.predict_proba(data)
        _assert_distributions(proba, data, est.n_classes_, "predict_proba")
        labels = est.predict(data)
        for lab, p in zip(labels, proba):
            assert lab.shape == p.shape[:2] and lab.dtype.kind in "ui"
            np.testing.assert_array_equal(lab, p.argmax(-1))


def check_transform(est):
    """``transform`` gives ``Unaries`` of probabilities equal to ``predict_proba``."""
    est, data, _ = _fitted_clone(est, 3)
    U = est.transform(data)
    assert isinstance(U, Unaries) and U.kind == "proba" and len(U) == len(data)
    for a, b in zip(U.scores, est.predict_proba(data)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def check_fit_idempotent(est):
    """Fitting twice on the same data gives the same predictions."""
    est, data, labels = _fitted_clone(est, 4)
    first = est.predict_proba(data)
    est.fit(data, labels)
    for a, b in zip(first, est.predict_proba(data)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def check_subset_and_order_invariance(est):
    """Predicting a subset, or the images in another order, gives the same per-image output."""
    est, data, _ = _fitted_clone(est, 5)
    full = est.predict_proba(data)
    order = [2, 0, 1]
    sub = data[order] if isinstance(data, Unaries) else [data[i] for i in order]
    for i, p in zip(order, est.predict_proba(sub)):
        np.testing.assert_allclose(p, full[i], rtol=1e-5, atol=1e-6)


def _mean_iou(labels, predictions, n_classes):
    """Mean IoU pooled over the images, over the classes present in either (numpy)."""
    cm = np.zeros((n_classes, n_classes))
    for t, p in zip(labels, predictions):
        t, p = np.asarray(t).ravel(), np.asarray(p).ravel()
        keep = t != 255
        np.add.at(cm, (t[keep].astype(np.intp), p[keep].astype(np.intp)), 1)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return float(np.mean(inter[union > 0] / union[union > 0]))


def check_score(est):
    """``score(X, y)`` is the mean IoU of ``predict(X)``."""
    est, data, labels = _fitted_clone(est, 6)
    expected = _mean_iou(labels, est.predict(data), est.n_classes_)
    assert abs(est.score(data, labels) - expected) < 1e-12


def check_dict_unchanged(est):
    """Prediction does not change the estimator's state."""
    est, data, _ = _fitted_clone(est, 7)
    before = pickle.dumps(est.__dict__)
    for method in ("predict", "predict_proba", "transform"):
        getattr(est, method)(data)
        assert pickle.dumps(est.__dict__) == before, f"{method} changed the estimator"


def check_params_not_overwritten(est):
    """``fit`` leaves the constructor parameters as they were, and inputs unmodified."""
    rng = np.random.default_rng(8)
    est = clone(est)
    params = pickle.dumps(est.get_params(deep=False))
    images = _images(rng)
    labels = _labels(rng, images)
    copies = [im.copy() for im in images], [lab.copy() for lab in labels]
    if _is_refiner(est):
        U = _unaries(rng, images)
        scores = [s.copy() for s in U.scores]
        est.fit(U, labels)
        est.predict_proba(U)
        for a, b in zip(U.scores, scores):
            np.testing.assert_array_equal(a, b)
    else:
        est.fit(images, labels)
        est.predict_proba(images)
    assert pickle.dumps(est.get_params(deep=False)) == params, "fit changed a parameter"
    for a, b in zip(images + labels, copies[0] + copies[1]):
        np.testing.assert_array_equal(a, b)


def check_pickle_roundtrip(est):
    """A pickled and unpickled fitted estimator predicts the same; a clone is unfitted."""
    est, data, _ = _fitted_clone(est, 9)
    restored = pickle.loads(pickle.dumps(est))
    for a, b in zip(est.predict_proba(data), restored.predict_proba(data)):
        np.testing.assert_array_equal(a, b)
    fresh = clone(est)
    assert not hasattr(fresh, "n_classes_"), "clone must give an unfitted estimator"
    assert repr(fresh) == repr(est), "clone must keep the parameters"


def check_readonly_and_strided_input(est):
    """Read-only, Fortran-ordered and strided inputs give the same results as plain ones."""
    est, data, labels = _fitted_clone(est, 10)
    expected = est.predict_proba(data)
    images = data.images if isinstance(data, Unaries) else data
    variants = []
    ro = [im.copy() for im in images]
    for im in ro:
        im.flags.writeable = False
    variants.append(ro)
    variants.append([np.asfortranarray(im) for im in images])
    variants.append([np.repeat(im, 2, axis=1)[:, ::2] for im in images])
    for imgs in variants:
        if isinstance(data, Unaries):
            scores = [np.asfortranarray(s) for s in data.scores]
            arg = Unaries(imgs, scores, kind=data.kind)
        else:
            arg = imgs
        for a, b in zip(est.predict_proba(arg), expected):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ro_labels = [lab.copy() for lab in labels]
    for lab in ro_labels:
        lab.flags.writeable = False
    clone(est).fit(variants[0] if not isinstance(data, Unaries) else data, ro_labels)


def check_input_dtypes(est):
    """uint8, uint16, int, float32 and float64 images, and a stacked ndarray, are accepted."""
    rng = np.random.default_rng(11)
    est = clone(est)
    images = _images(rng, sizes=((12, 15),) * 3)
    labels = _labels(rng, images)
    is_refiner = _is_refiner(est)
    for dtype in (np.uint8, np.uint16, np.int32, np.float32, np.float64):
        conv = [im.astype(dtype) for im in images]
        data = _unaries(rng, conv) if is_refiner else conv
        est.fit(data, labels)
        _assert_distributions(est.predict_proba(data), data, est.n_classes_, str(dtype))
    stacked = np.stack(images)
    if is_refiner:
        data = Unaries(stacked, _unaries(rng, images).scores)
    else:
        data = stacked
    est.fit(data, np.stack(labels))
    _assert_distributions(est.predict_proba(data), data, est.n_classes_, "stacked")


def _raises(exc, func, *args, match_any=None, **kwargs):
    try:
        func(*args, **kwargs)
    except exc as e:
        msg = str(e)
        if match_any and not any(m in msg for m in match_any):
            raise AssertionError(f"unclear message {msg!r}; expected one of {match_any}") from e
        return
    except Exception as e:  # a numba or numpy traceback is a failure of the check
        raise AssertionError(
            f"{func.__name__} raised {type(e).__name__}: {e} instead of {exc}"
        ) from e
    raise AssertionError(f"{func.__name__} accepted bad input")


def check_bad_input(est):
    """Bad input gets a ValueError or TypeError naming the argument, never garbage."""
    import scipy.sparse

    rng = np.random.default_rng(12)
    est = clone(est)
    images = _images(rng)
    labels = _labels(rng, images)
    bad = (ValueError, TypeError)
    if _is_refiner(est):
        U = _unaries(rng, images)
        _raises(TypeError, est.fit, images, labels)  # images, not Unaries
        _raises(ValueError, est.fit, U, labels[:2])
        _raises(ValueError, est.fit, U, [lab[:-1] for lab in labels])
        est.fit(U, labels)
        wrong_k = _unaries(rng, images, n_classes=4)
        _raises(ValueError, est.predict_proba, wrong_k, match_any=["classes"])
        _raises(TypeError, est.predict_proba, np.zeros((3, 4, 4)))
        im, s = images[0], U.scores[0]
        if hasattr(est, "refine"):
            _raises(ValueError, est.refine, im, s[:-1], match_any=["scores"])
            _raises(ValueError, est.refine, im, np.moveaxis(s, -1, 0), match_any=["scores"])
            nan = s.copy()
            nan[0, 0, 0] = np.nan
            _raises(ValueError, est.refine, im, nan, match_any=["NaN"])
            _raises(ValueError, est.refine, im, s * 3, kind="proba", match_any=["logits"])
            _raises(ValueError, est.refine, im, s, kind="probability", match_any=["kind"])
            nan_im = im.astype(np.float32)
            nan_im[0, 0, 0] = np.inf
            _raises(ValueError, est.refine, nan_im, s, match_any=["image"])
            _raises(ValueError, est.refine, im[:, :, None, None], s, match_any=["image"])
        return
    _raises(ValueError, est.fit, [], [])
    _raises(bad, est.fit, images, None)
    _raises(ValueError, est.fit, images, labels[:2])
    _raises(ValueError, est.fit, images, [lab[:, :-1] for lab in labels], match_any=["shape"])
    neg = [lab.astype(np.int16) for lab in labels]
    neg[1][0, 0] = -1
    _raises(ValueError, est.fit, images, neg, match_any=["labels"])
    nan_images = [im.astype(np.float64) for im in images]
    nan_images[0][1, 1, 0] = np.nan
    _raises(ValueError, est.fit, nan_images, labels, match_any=["NaN"])
    _raises(TypeError, est.fit, [im.astype(complex) for im in images], labels)
    _raises(TypeError, est.fit, [im.astype(object) for im in images], labels)
    _raises(bad, est.fit, scipy.sparse.csr_matrix(np.ones((4, 4))), labels)
    _raises(ValueError, est.fit, np.zeros((10, 4)), np.zeros(10, int), match_any=["shape"])
    est.fit(images, labels)
    _raises(ValueError, est.predict, [], match_any=["empty"])
    _raises(ValueError, est.predict_proba, np.zeros((4, 4)), match_any=["list"])
    _raises(ValueError, est.predict_proba, [np.zeros((0, 5), np.uint8)], match_any=["empty"])
    _raises(TypeError, est.predict_proba, None)


_CHECKS = (
    check_fit_returns_self,
    check_unfitted,
    check_odd_sizes,
    check_transform,
    check_fit_idempotent,
    check_subset_and_order_invariance,
    check_score,
    check_dict_unchanged,
    check_params_not_overwritten,
    check_pickle_roundtrip,
    check_readonly_and_strided_input,
    check_input_dtypes,
    check_bad_input,
)


def _yield_checks(est):
    # The same properties hold for both roles; each check builds the role's input.
    if not (_is_segmenter(est) or _is_refiner(est)):
        raise TypeError(f"{type(est).__name__} is neither a segmenter nor a refiner")
    yield from _CHECKS


def check_estimator_images(est):
    """Run every image-shaped check on ``est``; raise on the first failure."""
    for check in _yield_checks(est):
        check(est)


def parametrize_with_image_checks(estimators):
    """A ``pytest.mark.parametrize`` over ``(estimator, check)`` pairs, like scikit-learn's.

    Parameters
    ----------
    estimators : list of estimators
        Segmenters and refiners (instances).
    """
    import pytest

    params, ids = [], []
    for est in estimators:
        for check in _yield_checks(est):
            params.append((est, partial(check)))
            ids.append(f"{est!r}-{check.__name__}")
    return pytest.mark.parametrize(("estimator", "check"), params, ids=ids)
