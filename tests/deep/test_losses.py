"""The segmentation losses against their formulas, written in numpy."""

import numpy as np
import pytest
from _oracles import np_pixels

torch = pytest.importorskip("torch")

from hybridseg.deep.losses import (  # noqa: E402
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    cross_entropy,
    dice_loss,
    focal_loss,
    make_loss,
)

VOID = 255


def batch(seed, n=2, k=4, h=5, w=6, void=0.2):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k, h, w))
    target = rng.integers(0, k, (n, h, w))
    target[rng.random((n, h, w)) < void] = VOID
    return logits, target


def t(x, dtype=torch.float64):
    return torch.as_tensor(x, dtype=dtype)


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0]])
def test_cross_entropy_formula_and_torch(weight):
    logits, target = batch(0)
    logp, y = np_pixels(logits, target)
    w = np.ones(4) if weight is None else np.asarray(weight)
    expected = -(w[y] * logp[np.arange(len(y)), y]).sum() / w[y].sum()
    got = cross_entropy(t(logits), t(target, torch.long), weight=weight)
    assert float(got) == pytest.approx(expected, rel=1e-10)
    ref = torch.nn.functional.cross_entropy(
        t(logits), t(target, torch.long), ignore_index=VOID,
        weight=None if weight is None else t(weight))
    assert float(got) == pytest.approx(float(ref), rel=1e-10)
    none = cross_entropy(t(logits), t(target, torch.long), weight=weight, reduction="none")
    assert none.shape == target.shape and float(none[torch.as_tensor(target == VOID)].abs()
                                                .sum()) == 0
    assert float(none.sum()) == pytest.approx(float(cross_entropy(
        t(logits), t(target, torch.long), weight=weight, reduction="sum")))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_formula(gamma):
    logits, target = batch(1)
    logp, y = np_pixels(logits, target)
    w = np.array([0.25, 1.0, 2.0, 1.0])
    lp = logp[np.arange(len(y)), y]
    expected = -(w[y] * (1 - np.exp(lp)) ** gamma * lp).sum() / w[y].sum()
    got = focal_loss(t(logits), t(target, torch.long), gamma=gamma, weight=w)
    assert float(got) == pytest.approx(expected, rel=1e-10)
    if gamma == 0:
        assert float(got) == pytest.approx(float(cross_entropy(
            t(logits), t(target, torch.long), weight=w)), rel=1e-12)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weight", [None, [1.0, 0.0, 2.0, 1.0]])
def test_dice_formula(per_image, weight):
    logits, target = batch(2)
    x = logits - logits.max(1, keepdims=True)
    proba = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    valid = (target != VOID)[:, None]
    onehot = np.stack([(target == c) for c in range(4)], 1) & valid
    proba = proba * valid
    axes = (2, 3) if per_image else (0, 2, 3)
    dice = (2 * (proba * onehot).sum(axes) + 1.0) / (proba.sum(axes) + onehot.sum(axes) + 1)
    v = np.ones(4) if weight is None else np.asarray(weight)
    expected = 1 - np.mean((dice * v).sum(-1) / v.sum())
    got = dice_loss(t(logits), t(target, torch.long), weight=weight, per_image=per_image)
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_perfect_prediction_has_zero_dice_loss_and_void_is_ignored():
    target = torch.tensor([[[0, 1], [2, VOID]]])
    logits = 50.0 * torch.nn.functional.one_hot(target.clamp(max=2), 3).movedim(-1, 1)
    logits[0, :, 1, 1] = torch.tensor([0.0, 80.0, -3.0])  # nonsense on the void pixel
    logits = logits.double()
    assert float(dice_loss(logits, target, smooth=1e-6)) == pytest.approx(0, abs=1e-6)
    assert float(cross_entropy(logits, target)) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("loss", [cross_entropy, focal_loss, dice_loss])
def test_gradients_are_finite_and_void_pixels_get_none(loss):
    logits, target = batch(3)
    x = t(logits).requires_grad_()
    loss(x, t(target, torch.long)).backward()
    assert torch.isfinite(x.grad).all()
    void = torch.as_tensor(target == VOID).unsqueeze(1).expand_as(x)
    assert float(x.grad[void].abs().max()) == 0.0
    small = t(target[:1, :3, :3], torch.long)
    assert torch.autograd.gradcheck(lambda z: loss(z, small),
                                    (t(logits[:1, :, :3, :3]).requires_grad_(),))


@pytest.mark.parametrize("loss", [cross_entropy, focal_loss])
def test_all_void_batch_gives_zero_not_nan(loss):
    x = torch.zeros(1, 3, 2, 2, requires_grad=True)
    value = loss(x, torch.full((1, 2, 2), VOID))
    value.backward()
    assert float(value.detach()) == 0.0 and float(x.grad.abs().sum()) == 0.0


def test_modules_match_functions_and_move_with_the_model():
    logits, target = batch(4)
    x, y = t(logits, torch.float32), t(target, torch.long)
    w = [1.0, 2.0, 3.0, 4.0]
    assert float(CrossEntropyLoss(w)(x, y)) == pytest.approx(
        float(cross_entropy(x, y, weight=w)), rel=1e-6)
    assert float(FocalLoss(1.5, w)(x, y)) == pytest.approx(
        float(focal_loss(x, y, gamma=1.5, weight=w)), rel=1e-6)
    assert float(DiceLoss(weight=w)(x, y)) == pytest.approx(
        float(dice_loss(x, y, weight=w)), rel=1e-6)
    m = CrossEntropyLoss(w).double()
    assert m.weight.dtype == torch.float64 and "weight" in m.state_dict()
    combo = CombinedLoss([(CrossEntropyLoss(), 1.0), (DiceLoss(), 0.5)])
    assert float(combo(x, y)) == pytest.approx(
        float(cross_entropy(x, y) + 0.5 * dice_loss(x, y)), rel=1e-6)


def test_make_loss():
    logits, target = batch(5)
    x, y = t(logits, torch.float32), t(target, torch.long)
    assert isinstance(make_loss("ce"), CrossEntropyLoss)
    both = make_loss("ce + dice", weight=[1, 1, 1, 2])
    assert float(both(x, y)) == pytest.approx(
        float(cross_entropy(x, y, weight=[1, 1, 1, 2]) + dice_loss(x, y, weight=[1, 1, 1, 2])),
        rel=1e-6)
    custom = FocalLoss()
    assert make_loss(custom) is custom
    with pytest.raises(ValueError, match="unknown loss 'ce\\+lovasz'"):
        make_loss("ce+lovasz")
    with pytest.raises(TypeError, match="name such as"):
        make_loss(3)


@pytest.mark.parametrize("call, exc, match", [
    (lambda x, y: cross_entropy(x, y[:, :-1]), ValueError, "target has shape"),
    (lambda x, y: cross_entropy(x, y.float()), TypeError, "integer tensor"),
    (lambda x, y: cross_entropy(x.long(), y), TypeError, "floating-point"),
    (lambda x, y: cross_entropy(x, torch.full_like(y, 4)), ValueError, "label 4, outside"),
    (lambda x, y: cross_entropy(x, torch.full_like(y, -1)), ValueError, "label -1"),
    (lambda x, y: cross_entropy(x, y, weight=[1, 2]), ValueError, "weight must hold 4"),
    (lambda x, y: cross_entropy(x, y, weight=[1, 2, -1, 1]), ValueError, "non-negative"),
    (lambda x, y: cross_entropy(x, y, reduction="avg"), ValueError, "reduction"),
    (lambda x, y: focal_loss(x, y, gamma=-1), ValueError, "gamma"),
    (lambda x, y: dice_loss(x, y, smooth=0), ValueError, "smooth"),
    (lambda x, y: dice_loss(x, y, weight=[0, 0, 0, 0]), ValueError, "all zero"),
    (lambda x, y: CombinedLoss([]), ValueError, "empty"),
    (lambda x, y: CombinedLoss([DiceLoss()]), TypeError, "pair"),
])
def test_bad_input(call, exc, match):
    logits, target = batch(6)
    with pytest.raises(exc, match=match):
        call(t(logits), t(target, torch.long))
