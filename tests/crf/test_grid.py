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



@pytest.mark.parametrize("method", ["expansion", "icm"])
def test_search_scores_are_the_mean_iou_of_refine(rng, method):
    pairs = [problem(rng, 16 + 2 * i, 20) for i in range(3)]
    U = Unaries([p[0] for p in pairs], [p[1] for p in pairs], kind="logits")
    y = [p[2] for p in pairs]
    crf = GridCRF(pairwise="contrast", method=method, search="exhaustive", n_jobs=2,
                  weight_grid=[0.0, 0.4, 2.0]).fit(U, y)
    assert sorted(crf.cv_scores_) == [0.0, 0.4, 2.0]
    assert sorted(crf.beta_scores_) == [0.25, 0.5, 1.0, 2.0, 4.0]
    for weight, score in crf.cv_scores_.items():
        by_hand = GridCRF(pairwise="contrast", method=method, weight=weight)
        by_hand.beta_scale_ = 1.0
        pred = [by_hand.refine(im, s, kind="logits").argmax(-1) for im, s in U]
        assert score == pytest.approx(mean_iou(y, pred, n_classes=3), abs=1e-12)


def scripted_scores(monkeypatch, weight_curve, beta_curve):
    """Make ``fit`` read its mean IoUs as ``weight_curve(w) + beta_curve(f)`` (with
    ``beta_curve(1) = 0``), recording what it asks for."""
    asked = []

    def fake(self, U, labels, k, settings, deadline=None):
        asked.extend(settings)
        return [weight_curve(w) + beta_curve(f) for w, f in settings]

    monkeypatch.setattr(GridCRF, "_search_scores", fake)
    return asked


@pytest.mark.parametrize("peak", range(14))
def test_coarse_to_fine_finds_the_peak_of_a_single_peaked_curve(rng, monkeypatch, peak):
    image, logits, truth = problem(rng)
    U = Unaries([image], [logits], kind="logits")
    grid = np.concatenate([[0.0], np.geomspace(0.05, 20.0, 13)])
    asked = scripted_scores(monkeypatch, lambda w: -abs(np.searchsorted(grid, w) - peak),
                            lambda f: 1 - abs(np.log2(f) - 1))
    crf = GridCRF(pairwise="contrast").fit(U, [truth])
    assert crf.weight_ == grid[peak]
    n_weights = sum(f == 1.0 for _, f in asked)
    assert n_weights <= 10 and len(crf.cv_scores_) == n_weights
    if peak > 0:  # beta: 0.5 and 2, then 4, which is no better than 2
        assert crf.beta_scale_ == 2.0
        assert sorted(crf.beta_scores_) == [0.5, 1.0, 2.0, 4.0]
    exhaustive = GridCRF(pairwise="contrast", search="exhaustive").fit(U, [truth])
    assert exhaustive.weight_ == crf.weight_
    assert len(exhaustive.cv_scores_) == 14


def test_ties_choose_the_smaller_weight_and_beta_one(rng, monkeypatch):
    image, logits, truth = problem(rng)
    U = Unaries([image], [logits], kind="logits")
    scripted_scores(monkeypatch, lambda w: 0.5, lambda f: 0.0)
    for search in ("exhaustive", "coarse_to_fine"):
        crf = GridCRF(pairwise="contrast", search=search,
                      weight_grid=[3.0, 1.0, 2.0]).fit(U, [truth])
        assert crf.weight_ == 1.0 and crf.beta_scale_ == 1.0

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
    with pytest.raises(ValueError, match="'search'"):
        GridCRF(search="golden").fit(Unaries([image], [logits], kind="logits"),
                                     [np.zeros(logits.shape[:2], np.uint8)])


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


def test_verbose_fit_prints_each_setting_and_max_time_stops_it(rng, capsys):
    pairs = [problem(rng) for _ in range(2)]
    U = Unaries([p[0] for p in pairs], [p[1] for p in pairs], kind="logits")
    y = [p[2] for p in pairs]
    crf = GridCRF(pairwise="contrast", verbose=1).fit(U, y)
    lines = capsys.readouterr().err.splitlines()
    scored = [ln for ln in lines if "mean IoU" in ln]
    assert len(scored) == len(crf.cv_scores_) + len(crf.beta_scores_) - 1
    assert lines[-1].startswith("GridCRF.fit: chose weight")
    with pytest.warns(UserWarning, match=r"max_time=1e-09 s: \d+ candidate settings"):
        short = GridCRF(pairwise="contrast", max_time=1e-9).fit(U, y)
    assert list(short.cv_scores_) == [0.0] and short.weight_ == 0.0
