"""GridCRF: the estimator around the grid graph kernels."""

import numpy as np
import pytest

from hybridseg import Unaries
from hybridseg.crf import GridCRF
from hybridseg.crf._expansion import alpha_expansion
from hybridseg.crf._grid_graph import grid_edges
from hybridseg.datasets import make_noisy_scores
from hybridseg.metrics import mean_iou
from hybridseg.utils.estimator_checks import parametrize_with_image_checks


def problem(rng, h=20, w=24, k=3):
    truth = np.zeros((h, w), np.uint8)
    truth[:, w // 3:] = 1
    truth[h // 2:, 2 * w // 3:] = 2 % k
    image = (np.array([[30, 60, 90], [200, 40, 40], [40, 200, 120]])[truth]
             + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)
    (logits,) = make_noisy_scores([truth], k, blur=1.0, scale=3.0, noise=2.5, n_patches=1,
                                  random_state=rng)
    return image, logits, truth


@parametrize_with_image_checks([GridCRF(weight=0.5), GridCRF(method="mean_field", n_iter=2),
                                GridCRF(pairwise="contrast", method="icm")])
def test_image_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("method", ["expansion", "swap", "trws", "icm", "mean_field"])
def test_methods_return_distributions_and_clean_up(rng, method):
    image, logits, truth = problem(rng)
    q = GridCRF(weight=1.0, method=method).refine(image, logits, kind="logits")
    assert q.shape == logits.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(-1), 1, atol=1e-5)
    if method != "mean_field":
        assert set(np.unique(q)) <= {0.0, 1.0}
    assert (q.argmax(-1) == truth).mean() > (logits.argmax(-1) == truth).mean()


def test_refine_is_the_expansion_of_its_energy(rng):
    image, logits, _ = problem(rng)
    crf = GridCRF(connectivity=8, weight=0.7)
    labels = crf.refine(image, logits, kind="logits").argmax(-1)
    edges, dist = grid_edges(labels.shape, 8)
    ref, energies = alpha_expansion(-logits.reshape(-1, 3).astype(float), edges, 0.7 / dist,
                                    1 - np.eye(3))
    np.testing.assert_array_equal(labels.ravel(), ref)
    assert crf.energy(image, logits, labels, kind="logits") == pytest.approx(energies[-1])
    # The unary decision has a higher energy.
    assert crf.energy(image, logits, logits.argmax(-1), kind="logits") >= energies[-1]


def test_zero_weight_is_the_unary_decision(rng):
    image, logits, _ = problem(rng)
    for method in ("expansion", "swap", "icm"):
        q = GridCRF(weight=0.0, method=method).refine(image, logits, kind="logits")
        np.testing.assert_array_equal(q.argmax(-1), logits.argmax(-1))


def test_volumes_and_contrast(rng):
    vol = rng.uniform(0, 255, (3, 8, 9))
    logits = rng.normal(0, 1, (3, 8, 9, 2)).astype(np.float32)
    q = GridCRF(connectivity=6, weight=0.5).refine(vol, logits, kind="logits")
    assert q.shape == logits.shape
    image, logits2, _ = problem(rng)
    q = GridCRF(pairwise="contrast", weight=2.0).refine(image, logits2, kind="logits")
    np.testing.assert_allclose(q.sum(-1), 1)


def test_fit_chooses_a_weight_that_beats_the_unaries(rng):
    pairs = [problem(rng) for _ in range(3)]
    U = Unaries([p[0] for p in pairs], [p[1] for p in pairs], kind="logits")
    y = [p[2] for p in pairs]
    crf = GridCRF().fit(U, y)
    assert crf.weight_ in crf.cv_scores_
    assert crf.cv_scores_[crf.weight_] >= crf.cv_scores_[0.0]
    assert crf.score(U, y) > mean_iou(y, [s.argmax(-1) for s in U.scores], n_classes=3)
    assert not hasattr(GridCRF().fit(U), "weight_")
    contrast = GridCRF(pairwise="contrast", weight_grid=[0.0, 1.0, 3.0]).fit(U, y)
    assert contrast.beta_scale_ in contrast.beta_scores_
    assert contrast.beta_scores_[contrast.beta_scale_] >= contrast.cv_scores_[contrast.weight_]
    # The chosen beta is the one refine uses.
    image, scores = U[0]
    by_hand = GridCRF(pairwise="contrast", weight=contrast.weight_)
    base = by_hand._problem(image, scores, "logits", contrast.weight_, 1.0)[2]
    used = contrast._problem(image, scores, "logits", contrast.weight_)[2]
    if contrast.beta_scale_ != 1.0 and contrast.weight_ > 0:
        assert not np.allclose(base, used)


def test_bad_input(rng):
    image, logits, _ = problem(rng)
    with pytest.raises(ValueError, match="'weight'"):
        GridCRF(weight=-1.0).refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="swap"):
        GridCRF(pairwise=[[0, 1, 5], [1, 0, 1], [5, 1, 0]]).refine(image, logits,
                                                                  kind="logits")
    with pytest.raises(ValueError, match="trws"):
        GridCRF(pairwise=-np.ones((3, 3)), method="swap").refine(image, logits, kind="logits")
    bad = logits.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GridCRF().refine(image, bad, kind="logits")
    with pytest.raises(ValueError, match="but its image is"):
        GridCRF().refine(image[:-1], logits, kind="logits")
    with pytest.raises(ValueError, match="4 or 8"):
        GridCRF(connectivity=6).refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="labels"):
        GridCRF().energy(image, logits, np.full(logits.shape[:2], 3), kind="logits")
    with pytest.raises(ValueError, match="pairwise"):
        GridCRF(pairwise=np.eye(2)).refine(image, logits, kind="logits")


def test_lower_bound_brackets_every_method(rng):
    image, logits, _ = problem(rng, h=12, w=14)
    bound, e_trws = GridCRF(weight=1.5, n_iter=20).lower_bound(image, logits, kind="logits")
    assert bound <= e_trws + 1e-9
    for method in ("expansion", "swap", "icm", "trws"):
        crf = GridCRF(weight=1.5, method=method, n_iter=20)
        labels = crf.refine(image, logits, kind="logits").argmax(-1)
        assert crf.energy(image, logits, labels, kind="logits") >= bound - 1e-9


def test_trws_takes_compatibilities_expansion_refuses(rng):
    image, logits, _ = problem(rng)
    mu = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 1.0], [5.0, 1.0, 0.0]])
    q = GridCRF(pairwise=mu, method="trws").refine(image, logits, kind="logits")
    np.testing.assert_allclose(q.sum(-1), 1)


def test_infinite_weights_and_all_void_labels_are_refused():
    im = np.zeros((8, 8, 3), np.uint8)
    p = np.full((8, 8, 2), 0.5, np.float32)
    for params in ({"weight": np.inf}, {"beta": np.inf}):
        with pytest.raises(ValueError, match=f"'{next(iter(params))}' parameter of GridCRF"):
            GridCRF(**params).refine(im, p)
    with pytest.raises(ValueError, match="no labelled pixel"):
        GridCRF().fit(Unaries([im], [p], kind="proba"), [np.full((8, 8), 255, np.uint8)])
