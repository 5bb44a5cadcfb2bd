import numpy as np
import pytest
import skimage.data
from _oracles import merge_oracle
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.measure import label as connected_components
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from hybridseg.classical import SplitMerge, quadtree_split
from hybridseg.classical._split_merge import region_statistics
from hybridseg.crf import GridCRF
from hybridseg.utils.estimator_checks import parametrize_with_image_checks


def piecewise_images():
    """Small images of a few flat patches plus noise that breaks every tie."""
    shape = st.tuples(st.integers(1, 16), st.integers(1, 16))
    return st.builds(
        lambda base, seed: base.astype(np.float64) * 10
        + np.random.default_rng(seed).random(base.shape),
        arrays(np.uint8, shape, elements=st.integers(0, 4)),
        st.integers(0, 2**32 - 1),
    )


@given(img=piecewise_images(), t=st.sampled_from([0.5, 1.0, 11.0, 25.0]),
       mt=st.sampled_from([1.0, 12.0, 30.0]))
def test_range_merge_equals_oracle(img, t, mt):
    sm = SplitMerge(t, merge_threshold=mt, min_region_size=1)
    np.testing.assert_array_equal(sm.segment(img), merge_oracle(img, t, mt))


@given(img=piecewise_images(), mt=st.sampled_from([0.3, 3.0, 8.0]),
       small=st.sampled_from([1, 3, 10]))
def test_std_merge_and_small_regions_equal_oracle(img, mt, small):
    sm = SplitMerge(1.0, merge_threshold=mt, predicate="std", min_region_size=small)
    np.testing.assert_array_equal(sm.segment(img),
                                  merge_oracle(img, 1.0, mt, "std", small))


@given(img=piecewise_images(), mt=st.sampled_from([0.5, 12.0, 30.0]))
def test_regions_connected_homogeneous_and_maximal(img, mt):
    regions = SplitMerge(0.5, merge_threshold=mt, min_region_size=1).segment(img)
    n = regions.max() + 1
    np.testing.assert_array_equal(np.unique(regions), np.arange(n))
    # Each region is one 4-connected component.
    assert connected_components(regions + 1, connectivity=1, background=0).max() == n
    blocks = quadtree_split(img, threshold=0.5)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, regions.ravel(), img.ravel())
    np.maximum.at(hi, regions.ravel(), img.ravel())
    for r in range(n):
        if len(np.unique(blocks[regions == r])) > 1:  # merged regions pass the predicate
            assert hi[r] - lo[r] <= mt
    # Maximal: no two adjacent regions could still merge.
    for a, b in ((regions[:, :-1], regions[:, 1:]), (regions[:-1, :], regions[1:, :])):
        d = a != b
        for x, y in zip(a[d], b[d]):
            assert max(hi[x], hi[y]) - min(lo[x], lo[y]) > mt


def test_min_region_size_leaves_no_small_region():
    cam = skimage.data.camera()[:200, :200]
    for m in (1, 16, 100):
        regions = SplitMerge(20, min_region_size=m).segment(cam)
        sizes = np.bincount(regions.ravel())
        assert sizes.min() >= min(m, cam.size)


def test_region_statistics_match_numpy(rng):
    img = (rng.random((13, 17, 3)) * 255).astype(np.uint8)
    gray = img.astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    regions = SplitMerge(60, min_region_size=5).segment(img)
    n = regions.max() + 1
    stats = region_statistics(img, gray, regions, n)
    rr, cc = np.mgrid[:13, :17]
    for r in range(n):
        m = regions == r
        g = gray[m].astype(np.float64)
        expected = [g.mean(), g.std(), g.min(), g.max(), m.mean(), rr[m].mean() / 12,
                    cc[m].mean() / 16, *img[m].mean(axis=0)]
        np.testing.assert_allclose(stats[r], expected, rtol=1e-6, atol=1e-6)


def test_default_threshold_follows_the_dtype():
    cam = skimage.data.camera()
    a = SplitMerge().segment(cam)
    b = SplitMerge().segment(cam / 255.0)
    c = SplitMerge(25.5).segment(cam)
    np.testing.assert_array_equal(a, c)
    # The float image in [0, 1] splits at 0.1, the same relative threshold.
    assert abs(int(a.max()) - int(b.max())) <= 0.01 * a.max()


def _stripes(rng, n=3, size=(24, 32)):
    X, y = [], []
    for _ in range(n):
        img = np.full(size, 30, np.uint8)
        lab = np.zeros(size, np.uint8)
        r = rng.integers(4, size[0] - 8)
        img[r:r + 6] = 200
        lab[r:r + 6] = 1
        img[:, -5:] = 120
        lab[:, -5:] = 2
        X.append(img + rng.integers(0, 5, size).astype(np.uint8))
        y.append(lab)
    return X, y


def test_rules_learn_gray_levels(rng):
    X, y = _stripes(rng)
    sm = SplitMerge(10, min_region_size=4, random_state=0).fit(X, y)
    assert sm.n_classes_ == 3
    assert "class 2  (" in sm.rules_
    assert any(f"if {name} <=" in sm.rules_ for name in ("mean", "min", "max"))
    named = sm.export_rules(class_names=["dark", "bright", "mid"])
    assert "class mid  (" in named and "class 2" not in named
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        sm.export_rules(class_names=["a", "b"])
    Xt, yt = _stripes(np.random.default_rng(7), n=2)
    assert sm.score(Xt, yt) == pytest.approx(1.0)
    proba = sm.predict_proba(Xt)
    assert proba[0].dtype == np.float32 and proba[0].shape == (24, 32, 3)
    np.testing.assert_allclose(proba[0].sum(-1), 1, atol=1e-6)
    # Smoothing keeps every class possible for a refiner.
    assert proba[0].min() >= 0.01 / 3 - 1e-7


def test_rules_text_leaves_out_tests_that_decide_nothing():
    from hybridseg.datasets import load_sample

    data = load_sample("membrane")
    sm = SplitMerge(max_depth=4, min_leaf_fraction=0.0, random_state=0).fit(
        data.images, data.labels)
    lines = sm.rules_.splitlines()
    share = 0.0
    for i, line in enumerate(lines):
        if line.lstrip().startswith("class "):
            share += float(line.split("(")[1].split("%")[0])
        # An "if" whose two sides are single decisions decides two different classes.
        if line.lstrip().startswith("if ") and i + 3 < len(lines):
            a, e, b = lines[i + 1], lines[i + 2], lines[i + 3]
            if e.strip() == "else:" and a.lstrip().startswith("class ") and \
                    b.lstrip().startswith("class "):
                assert a.split()[1] != b.split()[1]
    # The decisions cover every training pixel once.
    assert share == pytest.approx(100.0, abs=0.1 * len(lines))
    # The full tree has more tests than the text shows.
    assert sm.tree_.tree_.node_count > 2 * sum(ln.lstrip().startswith("if ") for ln in lines)


def test_void_pixels_are_not_learned(rng):
    X, y = _stripes(rng)
    y = [np.where(lab == 2, 255, lab).astype(np.uint8) for lab in y]
    sm = SplitMerge(10, random_state=0).fit(X, y)
    assert sm.n_classes_ == 2
    assert set(sm.tree_.classes_) == {0, 1}


def test_colour_rules_use_channel_means(rng):
    X, y = _stripes(rng)
    Xc = [np.dstack([im, im // 2, 255 - im]) for im in X]
    sm = SplitMerge(10, random_state=0).fit(Xc, y)
    assert sm.feature_names_[-3:] == ["mean_red", "mean_green", "mean_blue"]
    # A gray image is read as R = G = B: the same as its colour replica.
    gray_pred = sm.predict_proba(X[:1])[0]
    np.testing.assert_array_equal(
        gray_pred, sm.predict_proba([np.repeat(X[0][:, :, None], 3, axis=2)])[0])
    with pytest.raises(ValueError, match="X\\[0\\] has 5 channels"):
        sm.predict([np.zeros((4, 4, 5))])
    with pytest.raises(ValueError, match="mixes images with different channel counts"):
        SplitMerge().fit([X[0], Xc[1]], y[:2])


def test_in_a_pipeline_with_a_grid_crf(rng):
    X, y = _stripes(rng)
    pipe = Pipeline([("sm", SplitMerge(10, random_state=0)), ("crf", GridCRF(weight=0.5))])
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert clone(pipe).get_params()["sm__threshold"] == 10


@parametrize_with_image_checks([SplitMerge(30, min_region_size=2, random_state=0)])
def test_image_checks(estimator, check):
    check(estimator)


def test_constant_and_one_pixel_images():
    sm = SplitMerge()
    np.testing.assert_array_equal(sm.segment(np.full((7, 9), 3, np.uint8)), 0)
    np.testing.assert_array_equal(sm.segment(np.array([[5.0]])), [[0]])
    fitted = sm.fit([np.full((7, 9), 3, np.uint8)], [np.ones((7, 9), np.uint8)])
    assert fitted.predict([np.array([[9]], np.uint8)])[0].tolist() == [[1]]


@pytest.mark.parametrize("kwargs, call, exc, match", [
    (dict(threshold=300), "segment", ValueError, r"out of range for a uint8 image"),
    (dict(threshold=-1), "segment", ValueError, "threshold"),
    (dict(merge_threshold=1e9), "segment", ValueError, "merge_threshold"),
    (dict(predicate="mean"), "segment", ValueError, "predicate"),
    (dict(min_region_size=0), "segment", ValueError, "min_region_size"),
    (dict(min_size=4, max_size=2), "segment", ValueError, "max_size"),
])
def test_bad_parameters(kwargs, call, exc, match):
    with pytest.raises(exc, match=match):
        getattr(SplitMerge(**kwargs), call)(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("X, y, exc, match", [
    ([], [], ValueError, "X is empty"),
    ([np.zeros((0, 4))], [np.zeros((0, 4), np.uint8)], ValueError, "empty"),
    ([np.zeros((4, 4))], [np.full((4, 4), 0.5)], (TypeError, ValueError), "y"),
    ([np.zeros((4, 4))], [np.zeros((4, 5), np.uint8)], ValueError, "y\\[0\\]"),
    ([np.zeros((4, 4))], [np.full((4, 4), 255, np.uint8)], ValueError,
     "no labelled pixels"),
    ([np.zeros((4, 4))], None, ValueError, "requires y"),
])
def test_bad_training_data(X, y, exc, match):
    with pytest.raises(exc, match=match):
        SplitMerge().fit(X, y)


def test_unfitted_predict_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SplitMerge().predict([np.zeros((4, 4))])


def test_a_boolean_mask_is_split_by_the_default_threshold():
    mask = np.zeros((16, 16), bool)
    mask[:, 8:] = True
    regions = SplitMerge().segment(mask)
    assert np.unique(regions).size == 2  # one region before: bool read as 0/1
