import numpy as np
import pytest

from hybridseg.dummy import DummySegmenter


def test_prior_strategies(rng):
    X = [np.zeros((4, 5), np.uint8), np.zeros((2, 2), np.uint8)]
    y = [np.array([[0] * 5, [0] * 5, [1] * 5, [255] * 5]), np.full((2, 2), 2)]
    prior = DummySegmenter().fit(X, y)
    np.testing.assert_allclose(prior.class_prior_, [10 / 19, 5 / 19, 4 / 19])
    p = prior.predict_proba([np.zeros((3, 3))])[0]
    np.testing.assert_allclose(p[1, 1], prior.class_prior_, rtol=1e-6)
    mf = DummySegmenter("most_frequent").fit(X, y)
    assert (mf.predict([np.zeros((3, 3))])[0] == 0).all()
    uni = DummySegmenter("uniform").fit(X, y).predict_proba([np.zeros((2, 2))])[0]
    np.testing.assert_allclose(uni, 1 / 3)


def test_n_classes_larger_than_seen():
    seg = DummySegmenter(n_classes=5).fit([np.zeros((2, 2))], [np.zeros((2, 2), int)])
    assert seg.predict_proba([np.zeros((2, 2))])[0].shape == (2, 2, 5)


def test_spatial_prior_maps_relative_positions():
    # Top half class 0, bottom half class 1, learned at 8x8 and predicted at 20x6.
    y = np.zeros((8, 8), int)
    y[4:] = 1
    seg = DummySegmenter("spatial_prior", grid_size=4, alpha=0.0).fit([np.zeros((8, 8))], [y])
    lab = seg.predict([np.zeros((20, 6))])[0]
    assert (lab[:10] == 0).all() and (lab[10:] == 1).all()
    assert seg.spatial_prior_.shape == (4, 4, 2)


def test_spatial_prior_smoothing_and_empty_cells():
    y = np.full((8, 8), 255)
    y[:2, :2] = 0
    y[6:, 6:] = 1
    seg = DummySegmenter("spatial_prior", grid_size=4, alpha=0.0).fit([np.zeros((8, 8))], [y])
    # Cells no labelled pixel reached fall back to the global prior, not NaN.
    np.testing.assert_allclose(seg.spatial_prior_[1, 2], [0.5, 0.5])
    smooth = DummySegmenter("spatial_prior", grid_size=4, alpha=100.0).fit(
        [np.zeros((8, 8))], [y])
    assert smooth.spatial_prior_[0, 0, 0] < 0.6


def test_fit_needs_labels():
    with pytest.raises(ValueError, match="requires y"):
        DummySegmenter().fit([np.zeros((2, 2))], None)
