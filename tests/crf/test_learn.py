"""Learning the dense CRF: exact gradients through the unrolled mean field, and fit."""

import numpy as np
import pytest
from _oracles import dense as oracle
from sklearn.exceptions import NotFittedError

from hybridseg import Unaries
from hybridseg.crf import DenseCRF, Kernel
from hybridseg.crf._exact import ExactKernel
from hybridseg.crf._learn import LearningProblem
from hybridseg.crf._meanfield import LatticeKernel, mean_field
from hybridseg.datasets import make_noisy_scores


def small_problem(rng, kernel_class, h=7, w=9, k=3):
    yy, xx = np.mgrid[0:h, 0:w]
    img = rng.uniform(0, 255, (h, w))
    feats = [np.stack([xx.ravel() / 2.0, yy.ravel() / 2.0], 1),
             np.stack([xx.ravel() / 5.0, yy.ravel() / 5.0, img.ravel() / 40.0], 1)]
    unary = rng.normal(0, 1, (h * w, k)).astype(np.float32)
    labels = rng.integers(-1, k, h * w)
    kernels = [kernel_class(f.astype(np.float32)) for f in feats]
    return LearningProblem(unary, labels, kernels), feats, unary, labels


@pytest.mark.parametrize("kernel_class", [ExactKernel, LatticeKernel])
def test_gradient_matches_finite_differences(rng, kernel_class):
    problem, *_ = small_problem(rng, kernel_class)
    k = problem.unary.shape[1]
    weights = np.array([2.0, 3.0])
    mu = rng.normal(0, 1, (k, k))
    mu = (mu + mu.T) / 2
    class_weights = np.array([1.0, 2.0, 0.5])
    _, g_w, g_mu = problem.loss_and_gradient(weights, mu, 4, class_weights, True)

    def loss(w, m):
        return problem.loss_and_gradient(w, m, 4, class_weights, False)[0]

    eps = 1e-2
    for i in range(2):
        e = np.zeros(2)
        e[i] = eps
        numeric = (loss(weights + e, mu) - loss(weights - e, mu)) / (2 * eps)
        assert numeric == pytest.approx(g_w[i], rel=2e-3)
    numeric_mu = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            e = np.zeros((k, k))
            e[a, b] = eps
            numeric_mu[a, b] = (loss(weights, mu + e) - loss(weights, mu - e)) / (2 * eps)
    # float32 forward passes: finite differences are good to ~1e-3 of the largest entry.
    np.testing.assert_allclose(g_mu, numeric_mu, atol=2e-3 * np.abs(numeric_mu).max())


@pytest.mark.parametrize("potts", [True, False])
def test_loss_and_gradient_are_the_oracle_s(rng, potts):
    # Exact kernels: LearningProblem's forward and hand-written backward against the float64
    # oracle's (its own backward checked by finite differences in tests/deep/test_crfrnn.py).
    problem, feats, unary, labels = small_problem(rng, ExactKernel)
    k = unary.shape[1]
    weights = np.array([2.0, 3.0])
    mu = -np.eye(k) if potts else rng.normal(0, 1, (k, k))
    class_weights = np.array([1.0, 2.0, 0.5])
    loss, g_w, g_mu = problem.loss_and_gradient(weights, mu, 4, class_weights, not potts)
    kernels = [oracle.normalised_kernel(f.astype(np.float32)) for f in feats]
    z, tape = oracle.mean_field(-unary, kernels, weights, mu, 4)
    ref_loss, grad_z = oracle.log_loss(z, labels, class_weights)
    _, ref_w, ref_mu = oracle.mean_field_backward(tape, grad_z)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(g_w, ref_w, rtol=1e-4, atol=1e-5 * np.abs(ref_w).max())
    if not potts:
        np.testing.assert_allclose(g_mu, ref_mu, rtol=1e-4, atol=1e-5 * np.abs(ref_mu).max())


def test_forward_of_learning_is_inference(rng):
    problem, feats, unary, labels = small_problem(rng, LatticeKernel)
    weights = np.array([1.5, 4.0])
    k = unary.shape[1]
    q = mean_field(unary, [LatticeKernel(f.astype(np.float32)) for f in feats], weights,
                   None, 3)
    ok = labels >= 0
    expected = -np.log(q[ok, labels[ok]]).sum()
    loss, _, _ = problem.loss_and_gradient(weights, -np.eye(k), 3, np.ones(k), False)
    assert loss == pytest.approx(expected, rel=1e-4)


def toy_data(rng, n=4, h=20, w=26, k=3):
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros((h, w), np.uint8)
        lab[:, w // 3:] = 1
        lab[h // 2:, 2 * w // 3:] = 2
        image = (np.array([[30, 60, 90], [200, 40, 40], [40, 200, 120]])[lab]
                 + rng.normal(0, 8, (h, w, 3)))
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        lab = lab.copy()
        lab[0, :3] = 255
        labels.append(lab)
    scores = make_noisy_scores(labels, k, blur=1.0, scale=3.0, noise=2.5, n_patches=1,
                               random_state=rng)
    return Unaries(images, scores, kind="logits"), labels


def biased_data(rng, n=3, bias=3.0):
    """``toy_data`` from a unary stage that under-rates class 2 by ``bias`` logits: a fault
    that a learned compatibility can undo (a row of ``mu`` shifts its class's logits by
    the kernels' total mass) and Potts cannot."""
    U, y = toy_data(rng, n=n)
    scores = [s.copy() for s in U.scores]
    for s in scores:
        s[..., 2] -= bias
    return Unaries(U.images, scores, kind="logits"), y


def held_out_nll(crf, U, y):
    """Mean negative log-likelihood of the labels under ``crf.predict_proba(U)``."""
    total, count = 0.0, 0
    for proba, lab in zip(crf.predict_proba(U), y):
        valid = lab != 255
        p = np.take_along_axis(proba[valid], lab[valid][:, None].astype(np.intp), 1)
        total -= np.log(np.maximum(p, 1e-30)).sum()
        count += valid.sum()
    return total / count


@pytest.mark.parametrize("compat", ["potts", "learn"])
def test_fit_lowers_the_held_out_loss_and_predicts_with_what_it_learned(rng, compat):
    U, y = biased_data(rng)  # fitted on
    V, z = biased_data(rng)  # held out: other images from the same unary stage
    params = dict(n_iter=3, gaussian_sxy=2.0, bilateral_sxy=10.0, bilateral_srgb=30.0)
    crf = DenseCRF(compat=compat, max_iter=8, **params)
    assert crf.fit(U, y) is crf
    assert crf.n_classes_ == 3
    assert crf.extra_weights_.shape == (0,) and crf.compat_.shape == (3, 3)
    assert crf.loss_curve_[-1] < crf.loss_curve_[0]
    # What was learned generalises: a lower loss than the given weights (3, 10) and Potts
    # on images it never saw (measured: about half of it for Potts, 1e-3 of it learned).
    defaults = DenseCRF(**params).fit(U)
    assert held_out_nll(crf, V, z) < 0.8 * held_out_nll(defaults, V, z)
    # The learned parameters are the ones predict uses.
    by_hand = DenseCRF(gaussian_weight=crf.gaussian_weight_,
                       bilateral_weight=crf.bilateral_weight_,
                       compat=crf.compat_ if compat == "learn" else "potts", **params)
    for (im, s), p in zip(U, crf.predict_proba(U)):
        np.testing.assert_allclose(p, by_hand.refine(im, s, kind="logits"), atol=1e-5)
    if compat == "learn":
        # The learned compatibility undoes the unaries' bias against class 2, which
        # learning the weights under Potts cannot (measured: NLL 0.002 against 0.6, mean
        # IoU 0.998 against 0.62).
        potts = DenseCRF(max_iter=8, **params).fit(U, y)
        assert held_out_nll(crf, V, z) < 0.1 * held_out_nll(potts, V, z)
        assert crf.score(V, z) > potts.score(V, z) + 0.2


def test_fit_learns_extra_kernel_weights_and_keeps_dropped_kernels_dropped(rng):
    U, y = toy_data(rng, n=2)
    extra = Kernel(weight=2.0, features=lambda im: im[..., :1], sfeat=20.0, sxy=5.0)
    crf = DenseCRF(n_iter=2, gaussian_weight=0.0, extra_kernels=[extra], max_iter=4)
    crf.fit(U, y)
    assert crf.gaussian_weight_ == 0.0
    assert crf.extra_weights_.shape == (1,)
    assert crf.loss_curve_[-1] <= crf.loss_curve_[0]


def test_exact_backend_learns_too(rng):
    U, y = toy_data(rng, n=2, h=10, w=12)
    crf = DenseCRF(n_iter=2, backend="exact", gaussian_sxy=2.0, bilateral_sxy=6.0,
                   max_iter=5).fit(U, y)
    assert crf.loss_curve_[-1] < crf.loss_curve_[0]


def test_fit_without_labels_or_learning_keeps_parameters(rng):
    U, y = toy_data(rng, n=2)
    for crf in (DenseCRF(n_iter=2).fit(U), DenseCRF(n_iter=2, learn="none").fit(U, y)):
        assert crf.n_classes_ == 3
        assert not hasattr(crf, "gaussian_weight_")
    # Refitting without labels forgets learned weights.
    crf = DenseCRF(n_iter=2, max_iter=2).fit(U, y)
    assert hasattr(crf, "gaussian_weight_")
    crf.fit(U)
    assert not hasattr(crf, "gaussian_weight_")


def test_learning_errors(rng):
    U, y = toy_data(rng, n=2)
    image, scores = U[0]
    with pytest.raises(NotFittedError, match="compat='learn'"):
        DenseCRF(compat="learn").refine(image, scores, kind="logits")
    with pytest.raises(ValueError, match="labels"):
        DenseCRF(compat="learn").fit(U)
    with pytest.raises(ValueError, match="pydensecrf"):
        DenseCRF(backend="pydensecrf").fit(U, y)
    with pytest.raises(ValueError, match="labelled pixels"):
        DenseCRF().fit(U, [np.full_like(lab, 255) for lab in y])
    with pytest.raises(ValueError, match="class_weight"):
        DenseCRF(class_weight=[1.0, 2.0], max_iter=1).fit(U, y)
    with pytest.raises(ValueError, match="y"):
        DenseCRF().fit(U, [lab[:-1] for lab in y])


def test_balanced_class_weights(rng):
    _, y = toy_data(rng, n=2)
    crf = DenseCRF(class_weight="balanced")
    w = crf._class_weights(y, 3)
    counts = np.bincount(np.concatenate([lab[lab != 255] for lab in y]), minlength=3)
    np.testing.assert_allclose(w * counts, counts.sum() / 3)


def test_grid_search_picks_the_best_mean_iou_on_u(rng):
    from hybridseg.metrics import mean_iou

    U, y = toy_data(rng, n=2)
    params = dict(n_iter=3, gaussian_sxy=2.0, bilateral_sxy=10.0, bilateral_srgb=30.0)
    crf = DenseCRF(learn="grid", weight_grid=[0.0, 1.0, 4.0], **params).fit(U, y)
    # The given weights (3, 10) are candidates too; the bilateral weight is searched
    # first at the given Gaussian weight, then the Gaussian weight at the best one.
    assert {b for g, b in crf.cv_scores_ if g == 3.0} == {0.0, 1.0, 4.0, 10.0}
    b = crf.bilateral_weight_
    assert {g for g, bb in crf.cv_scores_ if bb == b} >= {0.0, 1.0, 3.0, 4.0}
    best = crf.cv_scores_[(crf.gaussian_weight_, b)]
    assert best == max(s for (g, bb), s in crf.cv_scores_.items() if bb == b)
    # Each score is the mean IoU of a CRF with those weights, given by hand.
    for (g, bb), s in crf.cv_scores_.items():
        by_hand = DenseCRF(gaussian_weight=g, bilateral_weight=bb, learn="none", **params)
        assert s == pytest.approx(mean_iou(y, by_hand.fit(U).predict(U), n_classes=3))
    assert crf.score(U, y) == pytest.approx(best)
    np.testing.assert_array_equal(crf.compat_, 1 - np.eye(3))
    with pytest.raises(ValueError, match="weight_grid"):
        DenseCRF(learn="grid", weight_grid=[-1.0]).fit(U, y)
    with pytest.raises(ValueError, match="learn='weights'"):
        DenseCRF(learn="grid", compat="learn").fit(U, y)


@pytest.mark.parametrize("learn", ["weights", "grid"])
def test_verbose_fit_says_what_it_does_and_max_time_stops_it(rng, capsys, learn):
    U, y = toy_data(rng, n=2)
    params = dict(n_iter=3, learn=learn, weight_grid=[0.0, 1.0], max_iter=4)
    crf = DenseCRF(verbose=1, **params).fit(U, y)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("DenseCRF.fit: ") for line in lines)
    if learn == "weights":
        assert "iteration 1: loss" in lines[1]
        assert len(lines) == len(crf.loss_curve_)
    else:
        assert len([ln for ln in lines if "mean IoU" in ln]) == len(crf.cv_scores_)
    # A budget already spent: the first candidate (the start) only, and a warning.
    with pytest.warns(UserWarning, match="max_time=1e-09 s"):
        short = DenseCRF(max_time=1e-9, **params).fit(U, y)
    assert capsys.readouterr().err == ""
    if learn == "weights":
        # Only the start was evaluated: the given weights are kept.
        np.testing.assert_array_equal(short.kernel_weights_,
                                      [DenseCRF().gaussian_weight, DenseCRF().bilateral_weight])
        assert len(short.loss_curve_) == 1
    else:
        assert len(short.cv_scores_) == 1
