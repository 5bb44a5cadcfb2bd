"""Metrics against independent, naive formulas (pixel loops and brute-force distances)."""

import math

import numpy as np
import pytest
from _oracles import (
    naive_boundary_f1_image,
    naive_boundary_miou,
    naive_confusion,
    naive_scores,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hybridseg import metrics


def random_maps(rng, n, k, void=0.1, blocky=False):
    yt, yp = [], []
    for i in range(n):
        shape = (13 + 3 * i, 17 + i)
        if blocky:
            t = np.kron(rng.integers(0, k, (shape[0] // 4 + 1, shape[1] // 4 + 1)),
                        np.ones((4, 4), int))[: shape[0], : shape[1]]
            p = t.copy()
            flip = rng.random(shape) < 0.15
            p[flip] = rng.integers(0, k, flip.sum())
        else:
            t = rng.integers(0, k, shape)
            p = rng.integers(0, k, shape)
        t = t.astype(np.uint8)
        t[rng.random(shape) < void] = 255
        yt.append(t)
        yp.append(p.astype(np.uint8))
    return yt, yp


# --------------------------------------------------------------------------- IoU family
@pytest.mark.parametrize("k", [1, 2, 5, 11])
def test_confusion_matches_naive(rng, k):
    yt, yp = random_maps(rng, 4, k)
    cm = metrics.confusion_matrix(yt, yp, n_classes=k)
    assert cm.dtype == np.int64 and cm.shape == (k, k)
    np.testing.assert_array_equal(cm, naive_confusion(yt, yp, k))


@pytest.mark.parametrize("k", [2, 6, 11])
def test_scores_match_naive_formulas(rng, k):
    yt, yp = random_maps(rng, 5, k, blocky=True)
    ref = naive_scores(naive_confusion(yt, yp, k))
    assert metrics.mean_iou(yt, yp, n_classes=k) == pytest.approx(ref["miou"], abs=1e-12)
    assert metrics.pixel_accuracy(yt, yp, n_classes=k) == pytest.approx(ref["acc"], abs=1e-12)
    assert metrics.mean_class_accuracy(yt, yp, n_classes=k) == pytest.approx(
        ref["macc"], abs=1e-12)
    assert metrics.frequency_weighted_iou(yt, yp, n_classes=k) == pytest.approx(
        ref["fwiou"], abs=1e-12)


def test_matches_sklearn_jaccard_without_void(rng):
    from sklearn.metrics import jaccard_score

    yt, yp = random_maps(rng, 3, 4, void=0.0)
    ours = metrics.per_class_iou(yt, yp, n_classes=4)
    theirs = jaccard_score(np.concatenate([t.ravel() for t in yt]),
                           np.concatenate([p.ravel() for p in yp]), average=None,
                           labels=range(4))
    np.testing.assert_allclose(ours, theirs)


def test_absent_classes_left_out_of_means():
    t = [np.array([[0, 0], [1, 1]], np.uint8)]
    p = [np.array([[0, 0], [1, 3]], np.uint8)]
    iou = metrics.per_class_iou(t, p, n_classes=5)
    # class 2 and 4: absent from both -> NaN; class 3: predicted only -> 0.
    assert np.isnan(iou[2]) and np.isnan(iou[4]) and iou[3] == 0
    assert iou[0] == 1 and iou[1] == 0.5
    assert metrics.mean_iou(t, p, n_classes=5) == pytest.approx((1 + 0.5 + 0) / 3)
    # mean class accuracy leaves out classes absent from the truth (2, 3, 4).
    assert metrics.mean_class_accuracy(t, p, n_classes=5) == pytest.approx((1 + 0.5) / 2)


def test_void_pixels_not_counted():
    t = [np.array([[255, 0], [1, 255]], np.uint8)]
    p = [np.array([[1, 0], [1, 0]], np.uint8)]
    assert metrics.pixel_accuracy(t, p, n_classes=2) == 1.0
    assert metrics.confusion_matrix(t, p, n_classes=2).sum() == 2
    # With ignore_index=None, 255 is an (invalid) label.
    with pytest.raises(ValueError, match="255"):
        metrics.confusion_matrix(t, p, n_classes=2, ignore_index=None)


def test_custom_ignore_index():
    t = [np.array([[-1, 0], [1, 1]])]
    p = [np.array([[1, 0], [1, 0]])]
    cm = metrics.confusion_matrix(t, p, n_classes=2, ignore_index=-1)
    np.testing.assert_array_equal(cm, [[1, 0], [1, 1]])


def test_all_void_gives_nan():
    t = [np.full((3, 3), 255, np.uint8)]
    p = [np.zeros((3, 3), np.uint8)]
    assert math.isnan(metrics.pixel_accuracy(t, p, n_classes=2))
    assert math.isnan(metrics.mean_iou(t, p, n_classes=2))


def test_perfect_prediction(rng):
    yt, _ = random_maps(rng, 3, 5)
    yp = [np.where(t == 255, 0, t) for t in yt]
    assert metrics.mean_iou(yt, yp, n_classes=5) == 1.0
    assert metrics.boundary_f1(yt, yp, n_classes=5) == 1.0


def test_n_classes_inferred(rng):
    yt, yp = random_maps(rng, 2, 4)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(yt, yp), metrics.confusion_matrix(yt, yp, n_classes=4))


def test_input_forms_agree(rng):
    t = rng.integers(0, 3, (3, 6, 7))
    p = rng.integers(0, 3, (3, 6, 7))
    a = metrics.confusion_matrix(t, p, n_classes=3)
    b = metrics.confusion_matrix(list(t.astype(np.int16)), tuple(p.astype(np.uint8)),
                                 n_classes=3)
    c = metrics.confusion_matrix([np.asfortranarray(x) for x in t], [x.T.T for x in p],
                                 n_classes=3)
    d = metrics.confusion_matrix(t.astype(float), p.astype(bool).astype(np.int64) * 2,
                                 n_classes=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert d.sum() == a.sum()


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("func", [
    metrics.confusion_matrix, metrics.mean_iou, metrics.per_class_iou,
    metrics.pixel_accuracy, metrics.mean_class_accuracy, metrics.frequency_weighted_iou,
    metrics.boundary_f1, metrics.segmentation_report,
])
def test_bad_input_raises_clear_errors(func):
    z = np.zeros
    with pytest.raises(ValueError, match="shape"):
        func([z((3, 3), int)], [z((4, 4), int)], n_classes=2)
    with pytest.raises(ValueError, match="1 label maps but y_pred has 2"):
        func([z((3, 3), int)], [z((3, 3), int)] * 2, n_classes=2)
    with pytest.raises(ValueError, match="empty"):
        func([], [], n_classes=2)
    with pytest.raises(ValueError, match=r"y_true\[0\] holds labels 7"):
        func([np.full((3, 3), 7)], [z((3, 3), int)], n_classes=2)
    with pytest.raises(ValueError, match=r"y_pred\[0\] holds labels"):
        func([z((3, 3), int)], [np.full((3, 3), 2)], n_classes=2)
    with pytest.raises(ValueError, match="wrap it in a list"):
        func(z((3, 3), int), z((3, 3), int), n_classes=2)
    with pytest.raises(TypeError, match="integer"):
        func([np.full((3, 3), 0.5)], [z((3, 3), int)], n_classes=2)
    with pytest.raises(TypeError, match="label maps"):
        func(None, [z((3, 3), int)], n_classes=2)
    with pytest.raises(ValueError, match="n_classes"):
        func([z((3, 3), int)], [z((3, 3), int)], n_classes=0)


# --------------------------------------------------------------------------- invariants
label_maps = st.integers(1, 6).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(
            st.tuples(st.integers(1, 9), st.integers(1, 9)).flatmap(
                lambda s: st.tuples(
                    arrays(np.uint8, s, elements=st.sampled_from([*range(k), 255])),
                    arrays(np.uint8, s, elements=st.integers(0, k - 1)),
                )
            ),
            min_size=1, max_size=4,
        ),
    )
)


@given(label_maps)
def test_invariants(data):
    k, pairs = data
    yt = [t for t, _ in pairs]
    yp = [p for _, p in pairs]
    cm = metrics.confusion_matrix(yt, yp, n_classes=k)
    np.testing.assert_array_equal(cm, naive_confusion(yt, yp, k))
    assert cm.sum() == sum(int((t != 255).sum()) for t in yt)
    miou = metrics.mean_iou(yt, yp, n_classes=k)
    acc = metrics.pixel_accuracy(yt, yp, n_classes=k)
    if cm.sum():
        assert 0 <= miou <= 1 and 0 <= acc <= 1
        # Swapping truth and prediction transposes the matrix and keeps IoU.
        yt2 = [np.where(t == 255, 0, t) for t in yt]
        a = metrics.per_class_iou(yt2, yp, n_classes=k)
        b = metrics.per_class_iou(yp, yt2, n_classes=k)
        np.testing.assert_allclose(a, b)
    # Permuting the order of images changes nothing.
    assert metrics.mean_iou(yt[::-1], yp[::-1], n_classes=k) == pytest.approx(miou,
                                                                              nan_ok=True)


# --------------------------------------------------------------------------- boundary F1
@pytest.mark.parametrize("tol", [0.0, 1.0, 1.5, 3.0])
def test_boundary_f1_matches_brute_force(rng, tol):
    yt, yp = random_maps(rng, 3, 4, void=0.05, blocky=True)
    ours = metrics.boundary_f1(yt, yp, n_classes=4, tolerance=tol)
    ref = np.mean([naive_boundary_f1_image(t, p, 4, 255, tol) for t, p in zip(yt, yp)])
    assert ours == pytest.approx(ref, abs=1e-12)


def test_boundary_f1_default_tolerance_is_diagonal_fraction(rng):
    yt, yp = random_maps(rng, 1, 3, blocky=True)
    tol = 0.0075 * math.hypot(*yt[0].shape)
    assert metrics.boundary_f1(yt, yp, n_classes=3) == pytest.approx(
        metrics.boundary_f1(yt, yp, n_classes=3, tolerance=tol))


def test_boundary_f1_shifted_edge():
    t = np.zeros((20, 20), np.uint8)
    t[:, 10:] = 1
    p = np.zeros((20, 20), np.uint8)
    p[:, 13:] = 1  # boundary 3 px off
    assert metrics.boundary_f1([t], [p], n_classes=2, tolerance=2) == 0.0
    assert metrics.boundary_f1([t], [p], n_classes=2, tolerance=3) == 1.0
    per_class = metrics.boundary_f1([t], [p], n_classes=3, tolerance=3, average=None)
    np.testing.assert_allclose(per_class[:2], 1.0)
    assert np.isnan(per_class[2])


def test_boundary_f1_missing_class_scores_zero():
    t = np.zeros((10, 10), np.uint8)
    t[3:6, 3:6] = 1
    p = np.zeros((10, 10), np.uint8)
    # class 0 matches up to the missing square; class 1 is missed entirely.
    bf = metrics.boundary_f1([t], [p], n_classes=2, average=None)
    assert bf[1] == 0.0


def test_boundary_f1_bad_arguments():
    z = [np.zeros((4, 4), np.uint8)]
    with pytest.raises(ValueError, match="tolerance"):
        metrics.boundary_f1(z, z, n_classes=2, tolerance=-1)
    with pytest.raises(ValueError, match="average"):
        metrics.boundary_f1(z, z, n_classes=2, average="macro")


# --------------------------------------------------------------------------- report, scorer
def test_segmentation_report(rng):
    yt, yp = random_maps(rng, 3, 3, blocky=True)
    names = ["sky", "road", "car"]
    d = metrics.segmentation_report(yt, yp, class_names=names, output_dict=True,
                                    boundary=True)
    cm = naive_confusion(yt, yp, 3)
    ref = naive_scores(cm)
    assert d["mean_iou"] == pytest.approx(ref["miou"])
    assert d["pixel_accuracy"] == pytest.approx(ref["acc"])
    assert d["n_pixels"] == cm.sum()
    assert d["classes"]["road"]["support"] == cm[1].sum()
    assert d["classes"]["car"]["precision"] == pytest.approx(cm[2, 2] / cm[:, 2].sum())
    assert d["boundary_f1"] == pytest.approx(metrics.boundary_f1(yt, yp, n_classes=3))
    text = metrics.segmentation_report(yt, yp, class_names=names, digits=2)
    assert "road" in text and f"{100 * ref['miou']:.2f}" in text and "mean IoU" in text
    with pytest.raises(ValueError, match="class_names"):
        metrics.segmentation_report(yt, yp, n_classes=3, class_names=["a", "b"])


def test_report_marks_undefined_classes():
    t = [np.zeros((2, 2), np.uint8)]
    text = metrics.segmentation_report(t, t, n_classes=2)
    row = next(line for line in text.splitlines() if line.strip().startswith("1 "))
    assert "-" in row


def test_scorer_uses_fitted_n_classes():
    class Fixed:
        n_classes_ = 4

        def predict(self, X):
            return [np.zeros(x.shape[:2], np.uint8) for x in X]

    X = [np.zeros((2, 2))]
    y = [np.array([[0, 0], [0, 1]], np.uint8)]
    # class 1 missed (IoU 0), class 0 IoU 3/4; classes 2, 3 absent from both.
    assert metrics.mean_iou_scorer(Fixed(), X, y) == pytest.approx(0.375)
    assert metrics.make_mean_iou_scorer(n_classes=4)(Fixed(), X, y) == pytest.approx(0.375)
    with pytest.raises(ValueError):
        metrics.make_mean_iou_scorer(n_classes=0)


def test_speed_path_handles_many_maps(rng):
    # 200 CamVid-size maps in one call: the pooled matrix equals per-map sums.
    t = rng.integers(0, 12, (200, 36, 48)).astype(np.uint8)
    t[t == 11] = 255
    p = rng.integers(0, 11, (200, 36, 48)).astype(np.uint8)
    whole = metrics.confusion_matrix(t, p, n_classes=11)
    parts = sum(metrics.confusion_matrix(t[i:i + 50], p[i:i + 50], n_classes=11)
                for i in range(0, 200, 50))
    np.testing.assert_array_equal(whole, parts)


def test_big_endian_label_maps_score_as_native_ones():
    t = np.array([[0, 1], [1, 2]], ">i4")
    p = np.array([[0, 1], [2, 2]], ">i4")
    native = [t.astype("<i4")], [p.astype("<i4")]
    assert metrics.mean_iou([t], [p], n_classes=3) == metrics.mean_iou(*native, n_classes=3)
    np.testing.assert_array_equal(metrics.confusion_matrix([t], [p], n_classes=3),
                                  metrics.confusion_matrix(*native, n_classes=3))
    assert metrics.boundary_f1([t], [p], n_classes=3) == \
        metrics.boundary_f1(*native, n_classes=3)


def test_unclear_inputs_get_errors_that_say_what_to_do():
    t = np.array([[0, 1], [1, 2]])
    p = np.array([[0, 1], [2, 2]])
    with pytest.raises(TypeError, match="tolerance must be a finite"):
        metrics.boundary_f1([t], [p], n_classes=3, tolerance="2")
    # a tolerance beyond the image's diagonal is the diagonal (it once asked for 58 TiB)
    assert metrics.boundary_f1([t], [p], n_classes=3, tolerance=1e6) == \
        metrics.boundary_f1([t], [p], n_classes=3, tolerance=3.0)
    with pytest.raises(ValueError, match="class_names has 1 names"):
        metrics.segmentation_report([t], [p], class_names=["a"])


def test_a_stray_huge_label_gets_a_memory_plan_not_a_numpy_error(monkeypatch):
    from hybridseg.utils import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda: 2**30)
    with pytest.raises(MemoryError, match=r"70001 x 70001 confusion matrix needs 36\.5 GiB"
                                          r".*inferred from the largest label, 70000"):
        metrics.mean_iou([np.array([[0, 70000]])], [np.array([[0, 1]])])


@pytest.mark.parametrize("width", [0, 1, 2.5, 8])
def test_boundary_miou_matches_pixel_loops(rng, width):
    yt, yp = random_maps(rng, 3, 4, void=0.05, blocky=True)
    got = metrics.boundary_miou(yt, yp, n_classes=4, width=width)
    assert got == pytest.approx(naive_boundary_miou(yt, yp, 4, 255, width), abs=1e-12)


def test_boundary_miou_band_and_edge_cases():
    t = np.zeros((6, 6), np.uint8)
    t[:, 3:] = 1
    p = np.zeros((6, 6), np.uint8)
    p[:, 4:] = 1
    # the band at width 1 is columns 1-4: class 0 2/3, class 1 1/2
    assert metrics.boundary_miou([t], [p], n_classes=2, width=1) == pytest.approx(7 / 12)
    assert metrics.boundary_miou([t], [t], n_classes=2, width=3) == 1.0
    # wide enough, the band is the whole labelled image: the plain mIoU
    assert metrics.boundary_miou([t], [p], n_classes=2, width=100) == pytest.approx(
        metrics.mean_iou([t], [p], n_classes=2))
    # one label and no void: no boundary, no band
    flat = np.zeros((5, 5), np.uint8)
    assert np.isnan(metrics.boundary_miou([flat], [flat], n_classes=2, width=4))
    # void borders a class: its pixels next to the void are in the band, the void is not
    v = flat.copy()
    v[2, 2] = 255
    guess = np.ones((5, 5), np.uint8)
    assert metrics.boundary_miou([v], [guess], n_classes=2, width=1) == 0.0
    assert metrics.boundary_miou([v], [flat], n_classes=2, width=1) == 1.0


def test_boundary_miou_bad_input():
    t = np.zeros((4, 4), np.uint8)
    for width in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="width must be a finite non-negative"):
            metrics.boundary_miou([t], [t], n_classes=2, width=width)
    with pytest.raises(TypeError, match="width"):
        metrics.boundary_miou([t], [t], n_classes=2, width="4")
    with pytest.raises(TypeError):
        metrics.boundary_miou([t], [t], width=4)  # n_classes is required
    with pytest.raises(ValueError, match="shape"):
        metrics.boundary_miou([t], [t[:3]], n_classes=2, width=4)
    with pytest.raises(ValueError, match="y_pred"):
        metrics.boundary_miou([t], [t + 5], n_classes=2, width=4)


def _noisy(rng, yt, rate, k):
    out = []
    for t in yt:
        p = np.where(t == 255, 0, t).astype(np.uint8)
        flip = rng.random(t.shape) < rate
        p[flip] = rng.integers(0, k, flip.sum())
        out.append(p)
    return out


def test_miou_interval_holds_the_estimate_and_is_seeded(rng):
    yt, _ = random_maps(rng, 12, 4, void=0.05, blocky=True)
    yp = _noisy(rng, yt, 0.3, 4)
    est = metrics.mean_iou(yt, yp, n_classes=4)
    low, high = metrics.miou_interval(yt, yp, n_classes=4, random_state=3)
    assert low < est < high and high - low < 0.5
    assert metrics.miou_interval(yt, yp, n_classes=4, random_state=3) == (low, high)
    narrow = metrics.miou_interval(yt, yp, n_classes=4, confidence=0.5, random_state=3)
    assert low <= narrow[0] <= narrow[1] <= high


def test_paired_miou_test(rng):
    yt, _ = random_maps(rng, 16, 4, void=0.05, blocky=True)
    worse = _noisy(rng, yt, 0.4, 4)
    better = _noisy(rng, yt, 0.1, 4)
    res = metrics.paired_miou_test(yt, worse, better, n_classes=4, random_state=0)
    assert res["delta"] == pytest.approx(metrics.mean_iou(yt, better, n_classes=4)
                                         - metrics.mean_iou(yt, worse, n_classes=4))
    assert 0 < res["ci_low"] <= res["delta"] <= res["ci_high"]
    assert res["p_value"] < 0.01 and res["n_images"] == 16
    back = metrics.paired_miou_test(yt, better, worse, n_classes=4, random_state=0)
    assert back["delta"] == pytest.approx(-res["delta"])
    same = metrics.paired_miou_test(yt, worse, worse, n_classes=4)
    assert same["delta"] == 0 and same["ci_low"] == same["ci_high"] == 0
    assert same["p_value"] == 1.0
    # a tiny difference on noisy images is not significant
    slightly = [p.copy() for p in worse]
    slightly[0][0, 0] = yt[0][0, 0] if yt[0][0, 0] != 255 else 0
    assert metrics.paired_miou_test(yt, worse, slightly, n_classes=4)["p_value"] > 0.5


def test_bootstrap_bad_input(rng):
    t = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.miou_interval([t], [t], n_classes=2)
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.paired_miou_test([t], [t], [t], n_classes=2)
    with pytest.raises(ValueError, match="n_boot"):
        metrics.miou_interval([t, t], [t, t], n_classes=2, n_boot=10)
    with pytest.raises(ValueError, match="confidence"):
        metrics.miou_interval([t, t], [t, t], n_classes=2, confidence=95)
    with pytest.raises(ValueError, match="one prediction per image"):
        metrics.paired_miou_test([t, t], [t, t], [t], n_classes=2)
