"""Losses for segmentation networks, all honouring ``ignore_index``.

Every loss takes logits ``(N, K, H, W)`` and integer targets ``(N, H, W)``; pixels whose
target is ``ignore_index`` (255) count for nothing, and a batch with no labelled pixel
gives a loss of 0 (with a zero gradient) instead of NaN.

- ``cross_entropy``: ``sum_i w_{y_i} (-log p_{i, y_i}) / sum_i w_{y_i}``, the pixel-wise
  cross-entropy with optional class weights ``w`` (torch's ``F.cross_entropy`` convention);
- ``focal_loss`` (Lin et al., ICCV 2017): ``sum_i w_{y_i} (1 - p_{i, y_i})^gamma
  (-log p_{i, y_i}) / sum_i w_{y_i}``, which is ``cross_entropy`` at ``gamma = 0``;
- ``dice_loss`` (soft Dice, Milletari et al., 2016): ``1 - sum_c v_c D_c / sum_c v_c``
  with ``D_c = (2 sum_i p_ic t_ic + s) / (sum_i p_ic + sum_i t_ic + s)`` over the labelled
  pixels of the batch (or of each image, ``per_image=True``), ``t`` the one-hot target and
  ``v`` optional class weights;
- the same as ``torch.nn.Module`` classes (``CrossEntropyLoss``, ``FocalLoss``,
  ``DiceLoss``), ``CombinedLoss`` for weighted sums, and ``make_loss`` to build one from a
  name such as ``"ce+dice"``.
"""

from __future__ import annotations

import numbers

from ._torch import require_torch

torch = require_torch()
F = torch.nn.functional

__all__ = [
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "cross_entropy",
    "dice_loss",
    "focal_loss",
    "make_loss",
]


def _check(logits, target, weight, ignore_index, name="weight"):
    """Validate shapes and labels; return ``(valid mask, target with void set to 0, w)``."""
    if not torch.is_tensor(logits) or not logits.is_floating_point() or logits.dim() < 2:
        raise TypeError("logits must be a floating-point tensor of shape (N, K, H, W)")
    if not torch.is_tensor(target) or target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor of shape (N, H, W), got "
                        f"{getattr(target, 'dtype', type(target).__name__)}")
    k = logits.shape[1]
    expected = tuple(logits.shape[:1] + logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target has shape {tuple(target.shape)} but logits of shape "
                         f"{tuple(logits.shape)} need {expected}")
    valid = target != ignore_index
    if bool(((target < 0) | (target >= k))[valid].any()):
        bad = target[valid & ((target < 0) | (target >= k))][0].item()
        raise ValueError(f"target holds label {bad}, outside the {k} classes 0..{k - 1} "
                         f"(and not ignore_index={ignore_index})")
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=logits.dtype, device=logits.device)
        if weight.shape != (k,) or not bool(torch.isfinite(weight).all()) or bool(
                (weight < 0).any()):
            raise ValueError(f"{name} must hold {k} finite non-negative numbers, got shape "
                             f"{tuple(weight.shape)}")
    return valid, safe, weight


def _weighted_mean(per_pixel, valid, safe, weight, reduction):
    w = valid.to(per_pixel.dtype)
    if weight is not None:
        w = w * weight[safe]
    if reduction == "none":
        return per_pixel * w
    total = (per_pixel * w).sum()
    if reduction == "sum":
        return total
    den = w.sum()
    # No labelled pixel: 0 with a zero gradient rather than 0 / 0.
    return total / den if bool(den > 0) else total * 0.0


def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, target, *, weight=None, ignore_index=255, reduction="mean"):
    """Pixel-wise cross-entropy with class weights and void pixels left out.

    Parameters
    ----------
    logits : (N, K, H, W) tensor of float
    target : (N, H, W) tensor of int
        Class of each pixel, ``ignore_index`` for void.
    weight : (K,) array_like or tensor, optional
        Class weights.
    ignore_index : int, default=255
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"mean"`` divides by the summed weights of the labelled pixels; ``"none"`` gives
        the ``(N, H, W)`` weighted per-pixel losses (0 on void).

    Returns
    -------
    loss : tensor
    """
    _check_reduction(reduction)
    valid, safe, weight = _check(logits, target, weight, ignore_index)
    nll = -torch.gather(F.log_softmax(logits, dim=1), 1, safe.unsqueeze(1)).squeeze(1)
    return _weighted_mean(nll, valid, safe, weight, reduction)


def focal_loss(logits, target, *, gamma=2.0, weight=None, ignore_index=255,
               reduction="mean"):
    """Focal loss: cross-entropy scaled by ``(1 - p_true)^gamma`` to focus on hard pixels.

    Parameters
    ----------
    logits : (N, K, H, W) tensor of float
    target : (N, H, W) tensor of int
    gamma : float, default=2.0
        Focusing parameter, ``>= 0``; 0 gives ``cross_entropy``.
    weight : (K,) array_like or tensor, optional
        Class weights (the ``alpha`` of Lin et al., per class).
    ignore_index : int, default=255
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"mean"`` divides by the summed weights of the labelled pixels.

    Returns
    -------
    loss : tensor
    """
    _check_reduction(reduction)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma >= 0:
        raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
    valid, safe, weight = _check(logits, target, weight, ignore_index)
    logp = torch.gather(F.log_softmax(logits, dim=1), 1, safe.unsqueeze(1)).squeeze(1)
    per_pixel = -((1.0 - logp.exp()).clamp_min(0.0) ** gamma) * logp
    return _weighted_mean(per_pixel, valid, safe, weight, reduction)


def dice_loss(logits, target, *, smooth=1.0, weight=None, ignore_index=255,
              per_image=False):
    """Soft Dice loss over the softmax probabilities, void pixels left out.

    Parameters
    ----------
    logits : (N, K, H, W) tensor of float
    target : (N, H, W) tensor of int
    smooth : float, default=1.0
        ``s`` in ``(2 sum p t + s) / (sum p + sum t + s)``: keeps classes absent from both
        prediction and truth at a Dice of 1, and the gradient finite.
    weight : (K,) array_like or tensor, optional
        Weight of each class's Dice in the mean.
    ignore_index : int, default=255
    per_image : bool, default=False
        Dice of each image and class, then the mean over images; by default the sums run
        over the whole batch.

    Returns
    -------
    loss : scalar tensor
        ``1 - `` the (weighted) mean Dice.
    """
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or not smooth > 0:
        raise ValueError(f"smooth must be a number > 0, got {smooth!r}")
    valid, safe, weight = _check(logits, target, weight, ignore_index)
    k = logits.shape[1]
    mask = valid.unsqueeze(1).to(logits.dtype)
    proba = F.softmax(logits, dim=1) * mask
    onehot = F.one_hot(safe, k).movedim(-1, 1).to(logits.dtype) * mask
    dims = tuple(range(2, logits.dim())) if per_image else (0, *range(2, logits.dim()))
    inter = (proba * onehot).sum(dims)
    denom = proba.sum(dims) + onehot.sum(dims)
    dice = (2.0 * inter + smooth) / (denom + smooth)  # (K,) or (N, K)
    if weight is None:
        mean = dice.mean(-1)
    else:
        if not bool(weight.sum() > 0):
            raise ValueError("weight must not be all zero")
        mean = (dice * weight).sum(-1) / weight.sum()
    return 1.0 - mean.mean()


class _ClassWeightedLoss(torch.nn.Module):
    """Holds the class weights as a buffer (so they follow ``.to(device)`` and the state
    dict) and the void label."""

    def __init__(self, weight=None, ignore_index=255):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(
            weight, dtype=torch.float32))
        self.ignore_index = ignore_index


class CrossEntropyLoss(_ClassWeightedLoss):
    """``cross_entropy`` as a module.

    Parameters
    ----------
    weight : (K,) array_like, optional
    ignore_index : int, default=255
    """

    def forward(self, logits, target):
        return cross_entropy(logits, target, weight=self.weight,
                             ignore_index=self.ignore_index)


class FocalLoss(_ClassWeightedLoss):
    """``focal_loss`` as a module.

    Parameters
    ----------
    gamma : float, default=2.0
    weight : (K,) array_like, optional
    ignore_index : int, default=255
    """

    def __init__(self, gamma=2.0, weight=None, ignore_index=255):
        super().__init__(weight, ignore_index)
        self.gamma = gamma

    def forward(self, logits, target):
        return focal_loss(logits, target, gamma=self.gamma, weight=self.weight,
                          ignore_index=self.ignore_index)


class DiceLoss(_ClassWeightedLoss):
    """``dice_loss`` as a module.

    Parameters
    ----------
    smooth : float, default=1.0
    weight : (K,) array_like, optional
    ignore_index : int, default=255
    per_image : bool, default=False
    """

    def __init__(self, smooth=1.0, weight=None, ignore_index=255, per_image=False):
        super().__init__(weight, ignore_index)
        self.smooth = smooth
        self.per_image = per_image

    def forward(self, logits, target):
        return dice_loss(logits, target, smooth=self.smooth, weight=self.weight,
                         ignore_index=self.ignore_index, per_image=self.per_image)


class CombinedLoss(torch.nn.Module):
    """A weighted sum of losses: ``sum_j c_j loss_j(logits, target)``.

    Parameters
    ----------
    losses : sequence of (torch.nn.Module, float)
        Each loss with its coefficient.

    Examples
    --------
    >>> import torch
    >>> from hybridseg.deep.losses import CombinedLoss, CrossEntropyLoss, DiceLoss
    >>> loss = CombinedLoss([(CrossEntropyLoss(), 1.0), (DiceLoss(), 0.5)])
    >>> logits, target = torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    >>> round(float(loss(logits, target)), 4)  # log 3 + 0.5 (1 - mean Dice)
    1.4589
    """

    def __init__(self, losses):
        super().__init__()
        losses = list(losses)
        if not losses:
            raise ValueError("losses is empty: give at least one (loss, coefficient)")
        for i, item in enumerate(losses):
            if (not isinstance(item, (tuple, list)) or len(item) != 2
                    or not callable(item[0]) or not isinstance(item[1], numbers.Real)):
                raise TypeError(f"losses[{i}] must be a (loss module, coefficient) pair")
        self.losses = torch.nn.ModuleList([m for m, _ in losses])
        self.coefficients = [float(c) for _, c in losses]

    def forward(self, logits, target):
        return sum(c * m(logits, target) for m, c in zip(self.losses, self.coefficients))


_NAMES = {"ce": CrossEntropyLoss, "focal": FocalLoss, "dice": DiceLoss}


def make_loss(spec="ce", *, weight=None, ignore_index=255):
    """A loss module from a name, a ``+``-joined sum of names, or a module as it is.

    Parameters
    ----------
    spec : str or torch.nn.Module, default="ce"
        ``"ce"``, ``"focal"``, ``"dice"``, or sums such as ``"ce+dice"`` (coefficient 1
        each; for other coefficients build a ``CombinedLoss``). A module is returned as is.
    weight : (K,) array_like, optional
        Class weights given to each named loss.
    ignore_index : int, default=255

    Returns
    -------
    loss : torch.nn.Module
    """
    if isinstance(spec, torch.nn.Module):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"loss must be a name such as 'ce+dice' or a torch module, got "
                        f"{type(spec).__name__}")
    names = [s.strip() for s in spec.split("+")]
    unknown = [n for n in names if n not in _NAMES]
    if unknown or not names:
        raise ValueError(f"unknown loss {spec!r}: use 'ce', 'focal', 'dice' or sums such "
                         "as 'ce+dice'")
    modules = [_NAMES[n](weight=weight, ignore_index=ignore_index) for n in names]
    return modules[0] if len(modules) == 1 else CombinedLoss([(m, 1.0) for m in modules])
