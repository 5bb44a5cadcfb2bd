"""Training a segmentation network: class weights, crops and augmentation, optimiser,
learning-rate schedule, and the loop with validation and early stopping.

The functions here hold no estimator state. ``train`` reads how to train from a settings
object (a ``CNNSegmenter``'s parameters: ``batch_size``, ``loss``, ``optimizer``,
``lr_schedule``, ``augment``, ``early_stopping``, ...) and returns a ``History``; the
estimators copy it onto their fitted attributes.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
import warnings

import numpy as np

from ..utils._progress import ProgressBar
from ._inference import autocast, batch_layout, network_logits
from ._interop import backbone_prefixes
from ._torch import require_torch

#: Fewer epochs than this, cut short by ``max_time``, get a warning.
FEW_EPOCHS = 5

__all__ = [
    "Freezer",
    "History",
    "balanced_weights",
    "class_weights",
    "crop_size",
    "fine_tuning",
    "lr_factor",
    "make_optimizer",
    "median_frequency_weights",
    "round_to_stride",
    "sample_crop",
    "semantic_encoding_loss",
    "train",
]


def median_frequency_weights(labels, n_classes, ignore_index):
    """SegNet's median frequency balancing: ``median(f) / f_c``, where ``f_c`` is the
    pixel count of class c over the pixel count of the images where c appears."""
    count = np.zeros(n_classes)
    total = np.zeros(n_classes)
    for y in labels:
        valid = y[y != ignore_index] if ignore_index is not None else y.ravel()
        c = np.bincount(valid.ravel(), minlength=n_classes)[:n_classes]
        count += c
        total += (c > 0) * valid.size
    freq = np.divide(count, total, out=np.zeros(n_classes), where=total > 0)
    present = freq > 0
    if not present.any():
        return np.ones(n_classes)
    med = np.median(freq[present])
    return np.where(present, med / np.where(present, freq, 1.0), 0.0)


def balanced_weights(labels, n_classes, ignore_index):
    """scikit-learn's ``"balanced"``: ``n_pixels / (K * count_c)`` over present classes."""
    count = np.zeros(n_classes)
    for y in labels:
        valid = y[y != ignore_index] if ignore_index is not None else y.ravel()
        count += np.bincount(valid.ravel(), minlength=n_classes)[:n_classes]
    present = count > 0
    k = max(int(present.sum()), 1)
    return np.where(present, count.sum() / (k * np.where(present, count, 1.0)), 0.0)


def class_weights(spec, labels, n_classes, ignore_index):
    """The loss's class weights ``(K,)`` float32 from a ``class_weight`` parameter: None,
    ``"median_frequency"``, ``"balanced"`` or given weights."""
    if spec is None:
        return None
    if isinstance(spec, str):
        fn = median_frequency_weights if spec == "median_frequency" else balanced_weights
        return fn(labels, n_classes, ignore_index).astype(np.float32)
    w = np.asarray(spec, dtype=np.float64)
    if w.shape != (n_classes,):
        raise ValueError(f"class_weight must have one weight per class, shape "
                         f"({n_classes},), got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("class_weight must hold finite non-negative weights")
    return w.astype(np.float32)


def crop_size(tensors, spec, stride):
    """Training crop ``(h, w)``: ``spec`` (an int or a pair) or the largest image, rounded
    up to the stride, and at least two strides a side (batch norm cannot train on a 1x1
    deepest map of a single crop; the extra rows and columns are void)."""
    if spec is None:
        h = max(t.shape[-2] for t in tensors)
        w = max(t.shape[-1] for t in tensors)
    elif isinstance(spec, numbers.Integral):
        h = w = int(spec)
    else:
        if len(spec) != 2 or not all(isinstance(v, numbers.Integral) and v > 0 for v in spec):
            raise ValueError(f"crop_size must be an int or (height, width), got {spec!r}")
        h, w = int(spec[0]), int(spec[1])
    return round_to_stride(h, stride), round_to_stride(w, stride)


def round_to_stride(side, stride):
    """``side`` rounded up to a multiple of ``stride``, and at least two strides (the
    rule of training crops)."""
    return max(-(-round(side) // stride) * stride, 2 * stride)


def sample_crop(x, y, ch, cw, rng, *, void, augment, scale_jitter, color_jitter):
    """One training crop ``(ch, cw)`` of a ``(C, H, W)`` image and its ``(H, W)`` labels:
    a random zoom in ``scale_jitter`` (when ``augment``), a random window (void padding
    where the zoomed crop is larger than the image), a random mirror, and a random gain and
    offset per channel in ``[1 - j, 1 + j]`` and ``[-j, j]`` (``j = color_jitter``)."""
    torch = require_torch()
    F = torch.nn.functional
    h, w = x.shape[-2:]
    zoom = 1.0
    if augment:
        lo, hi = scale_jitter
        zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    rh, rw = max(1, round(ch / zoom)), max(1, round(cw / zoom))
    y0 = int(rng.integers(0, h - rh + 1)) if h >= rh else -int(rng.integers(0, rh - h + 1))
    x0 = int(rng.integers(0, w - rw + 1)) if w >= rw else -int(rng.integers(0, rw - w + 1))
    xc = x.new_zeros((x.shape[0], rh, rw))
    yc = y.new_full((rh, rw), void)
    sy, sx = max(y0, 0), max(x0, 0)
    ey, ex = min(y0 + rh, h), min(x0 + rw, w)
    xc[:, sy - y0:ey - y0, sx - x0:ex - x0] = x[:, sy:ey, sx:ex]
    yc[sy - y0:ey - y0, sx - x0:ex - x0] = y[sy:ey, sx:ex]
    if (rh, rw) != (ch, cw):
        xc = F.interpolate(xc[None], size=(ch, cw), mode="bilinear", align_corners=False)[0]
        yc = F.interpolate(yc[None, None].float(), size=(ch, cw),
                           mode="nearest-exact")[0, 0].long()
    if augment and rng.random() < 0.5:
        xc, yc = xc.flip(-1), yc.flip(-1)
    if augment and color_jitter > 0:
        j = float(color_jitter)
        c = xc.shape[0]
        gain = torch.from_numpy(rng.uniform(1 - j, 1 + j, c).astype(np.float32))
        shift = torch.from_numpy(rng.uniform(-j, j, c).astype(np.float32))
        xc = xc * gain[:, None, None] + shift[:, None, None]
    return xc, yc


def lr_factor(progress, *, warmup, schedule):
    """The learning rate's factor at ``progress`` (fraction of training done): a linear
    warm-up over ``warmup``, then cosine to zero, DeepLab's ``(1 - t) ** 0.9`` "poly", or
    constant."""
    if warmup > 0 and progress < warmup:
        return progress / warmup
    t = 0.0 if warmup >= 1 else (progress - warmup) / (1 - warmup)
    t = min(max(t, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "poly":
        return (1 - t) ** 0.9
    return 1.0


def make_optimizer(spec, params, lr, weight_decay):
    """``"adamw"``, ``"adam"``, ``"sgd"`` (Nesterov momentum 0.9), or a callable
    ``spec(params, lr=lr)`` returning a ``torch.optim.Optimizer``."""
    torch = require_torch()
    if callable(spec):
        opt = spec(params, lr=lr)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError("optimizer, when a callable, must return a torch.optim.Optimizer")
        return opt
    if spec == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if spec == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                           weight_decay=weight_decay)


@dataclasses.dataclass
class History:
    """What a training run leaves: the curves, the epoch kept and the time spent."""

    loss_curve: list
    validation_scores: list
    best_validation_score: float | None
    initial_validation_score: float | None
    best_epoch: int
    n_epochs: int
    fit_time: float
    validation_epochs: list = dataclasses.field(default_factory=list)
    n_steps: int = 0


def train(model, xs, ys, *, settings, rng, weight, void, device, use_amp, stride, epochs,
          lr, param_groups=None, validate=None, desc="fit", score_start=False, output=None,
          on_epoch=None, adversary=None, time_spent=0.0):
    """Train ``model`` in place on prepared crops, and return its ``History``.

    Parameters
    ----------
    model : torch.nn.Module
        On ``device``; left in eval mode with the kept weights (the best validation epoch
        under ``settings.early_stopping``, else the last).
    xs : list of (C, H, W) torch.Tensor
        Prepared training images.
    ys : list of (H, W) torch.Tensor of int64
        Their labels, void as ``void``.
    settings : CNNSegmenter
        Whose parameters say how to train: ``batch_size``, ``crop_size``, ``augment``,
        ``scale_jitter``, ``color_jitter``, ``loss``, ``optimizer``, ``weight_decay``,
        ``lr_schedule``, ``warmup``, ``max_time``, ``early_stopping``,
        ``n_iter_no_change`` and ``verbose``.
    rng : numpy.random.Generator
        Draws the order of the images, the crops and the augmentation.
    weight : (K,) ndarray or None
        Class weights of the loss.
    void : int
        Label of void pixels in ``ys``.
    device : torch.device
    use_amp : bool
        Mixed precision (``_inference.autocast``); on the CPU, the network trains in
        channels-last memory format and is given back contiguous.
    stride : int
        The network's stride (crops are multiples of it).
    epochs : int
    lr : float
        Peak learning rate (a parameter group's ``"peak_lr"`` replaces it for that group).
    param_groups : list, optional
        What the optimiser trains (default: every parameter that requires a gradient).
    validate : callable, optional
        ``validate()`` gives the validation mean IoU of ``model`` in eval mode; called after
        every epoch (and before the first with ``score_start``, as epoch 0, so that early
        stopping keeps the start when no epoch beats it).
    desc : str
        Label of the progress bar.
    output : callable, optional
        Unwraps the network's output (``_inference.network_logits``).
    on_epoch : callable, optional
        ``on_epoch(model, epoch)`` after ``model.train()`` at the start of every epoch
        (from 1): freezes and unfreezes parts of the network.
    adversary : _adversarial.Adversary, optional
        Adds its adversarial term to the loss and trains its discriminator after every
        step.
    time_spent : float
        Seconds of ``settings.max_time`` already spent (timing the budget plan).

    Returns
    -------
    history : History
    """
    torch = require_torch()
    layout = batch_layout(device, use_amp)
    if layout is not None:  # in place: the parameters stay the same objects
        model.to(memory_format=layout)
    try:
        return _train(model, xs, ys, settings=settings, rng=rng, weight=weight, void=void,
                      device=device, use_amp=use_amp, stride=stride, epochs=epochs, lr=lr,
                      param_groups=param_groups, validate=validate, desc=desc,
                      score_start=score_start, output=output, on_epoch=on_epoch,
                      adversary=adversary, time_spent=time_spent, layout=layout)
    finally:
        if layout is not None:
            model.to(memory_format=torch.contiguous_format)


def _train(model, xs, ys, *, settings, rng, weight, void, device, use_amp, stride, epochs,
           lr, param_groups, validate, desc, score_start, output, on_epoch, adversary,
           time_spent, layout):
    """``train``'s loop, on batches in ``layout`` (a memory format, or None)."""
    torch = require_torch()
    from .losses import make_loss

    loss_fn = make_loss(settings.loss, weight=weight, ignore_index=void)
    se_weight = getattr(settings, "se_loss_weight", 0.0)
    if se_weight == "auto":  # EncNet's semantic-encoding loss, at the paper's 0.2
        se_weight = 0.2 if hasattr(model, "se_logits") else 0.0
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn = loss_fn.to(device)
    if param_groups is None:
        param_groups = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(settings.optimizer, param_groups, lr, settings.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")
    spec = getattr(settings, "crop_size_", settings.crop_size)
    ch, cw = crop_size(xs, None if spec == "auto" else spec, stride)
    n = len(xs)
    bs = min(settings.batch_size, n)
    total_steps = max(epochs * -(-n // bs), 1)
    max_time = settings.max_time
    early = settings.early_stopping
    h = History([], [], None, None, 0, 0, 0.0)
    best_state, since_best = None, 0
    step, start = 0, time.perf_counter() - time_spent
    # Under a budget, validation runs only as often as keeps it under a tenth of the
    # training time (always after the last epoch).
    thin = max_time is not None
    since_validation, validation_time = 0.0, 0.0

    def snapshot():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    if score_start and validate is not None:
        model.eval()
        h.best_validation_score = h.initial_validation_score = float(validate())
        if early:
            best_state = snapshot()
        if settings.verbose:
            print(f"{desc}: epoch 0 (the start) val mIoU "
                  f"{100 * h.best_validation_score:.1f}", flush=True)
    stop = False
    with ProgressBar(epochs, desc, enabled=bool(settings.verbose)) as bar:
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            if on_epoch is not None:
                on_epoch(model, epoch)
            order = rng.permutation(n)
            losses = []
            # A last batch of one image is skipped (batch norm cannot train on it); the
            # order is reshuffled every epoch, so no image is left out for good.
            end = n - 1 if n > bs and n % bs == 1 else n
            for b in range(0, end, bs):
                pairs = [sample_crop(xs[i], ys[i], ch, cw, rng, void=void,
                                     augment=settings.augment,
                                     scale_jitter=settings.scale_jitter,
                                     color_jitter=settings.color_jitter)
                         for i in order[b:b + bs]]
                xb = torch.stack([p[0] for p in pairs]).to(device)
                if layout is not None:
                    xb = xb.contiguous(memory_format=layout)
                yb = torch.stack([p[1] for p in pairs]).to(device)
                progress = step / total_steps
                if max_time is not None:
                    progress = max(progress, (time.perf_counter() - start) / max_time)
                factor = lr_factor(progress, warmup=settings.warmup,
                                   schedule=settings.lr_schedule)
                for g in opt.param_groups:
                    g["lr"] = g.get("peak_lr", lr) * factor
                opt.zero_grad(set_to_none=True)
                with autocast(device, use_amp):
                    logits = network_logits(model, xb, output).float()
                    loss = loss_fn(logits, yb)
                    if se_weight and getattr(model, "se_logits", None) is not None:
                        loss = loss + se_weight * semantic_encoding_loss(
                            model.se_logits.float(), yb, void)
                    if adversary is not None:
                        loss = loss + adversary.generator_loss(xb, logits)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss became {float(loss)} at "
                                             f"epoch {epoch}; lower lr")
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if adversary is not None:
                    adversary.step(xb, logits, yb)
                losses.append(float(loss.detach()))
                step += 1
                if max_time is not None and time.perf_counter() - start >= max_time:
                    stop = True
                    break
            h.loss_curve.append(float(np.mean(losses)) if losses else float("nan"))
            note = f"loss {h.loss_curve[-1]:.3f}"
            since_validation += time.perf_counter() - epoch_start
            last = stop or epoch == epochs
            if validate is not None and (not thin or last
                                         or since_validation >= 9 * validation_time):
                model.eval()
                t0 = time.perf_counter()
                score = float(validate())
                validation_time = time.perf_counter() - t0
                since_validation = 0.0
                h.validation_scores.append(score)
                h.validation_epochs.append(epoch)
                note += f" val mIoU {100 * score:.1f}"
                if h.best_validation_score is None or score > h.best_validation_score:
                    h.best_validation_score = score
                    h.best_epoch = epoch
                    if early:
                        best_state = snapshot()
                since_best = epoch - h.best_epoch
            bar.update(note=note)
            if early and since_best >= settings.n_iter_no_change:
                bar.write(f"early stop after epoch {epoch}: no better validation mIoU for "
                          f"{settings.n_iter_no_change} epochs")
                break
            if stop:
                bar.write(f"stopped after epoch {epoch}: max_time {max_time:g} s reached")
                break
    h.n_epochs = len(h.loss_curve)
    h.n_steps = step
    if stop and h.n_epochs < FEW_EPOCHS and epochs > h.n_epochs:
        warnings.warn(
            f"{desc}: max_time {max_time:g} s allowed {h.n_epochs} of {epochs} epochs; a "
            "network trained this briefly is often worse than the classical pixel "
            "classifier. Give more time, or work at a lower resolution (scale) or on "
            "smaller crops (crop_size)", UserWarning, stacklevel=4)
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        h.best_epoch = h.n_epochs
    model.eval()
    h.fit_time = time.perf_counter() - start
    return h


def semantic_encoding_loss(se_logits, labels, void):
    """EncNet's semantic-encoding loss: binary cross-entropy of ``(N, K)`` class-presence
    logits against the classes each label map ``(N, H, W)`` holds (void left out)."""
    torch = require_torch()
    k = se_logits.shape[1]
    valid = labels != void
    present = torch.zeros_like(se_logits)
    for i in range(labels.shape[0]):
        classes = labels[i][valid[i]].unique()
        present[i, classes[classes < k]] = 1.0
    return torch.nn.functional.binary_cross_entropy_with_logits(se_logits, present)


def fine_tuning(model, settings, *, pretrained):
    """``train``'s ``param_groups`` (the backbone at ``backbone_lr_mult`` times ``lr``) and
    ``on_epoch`` (a ``Freezer``) from a ``CNNSegmenter``'s fine-tuning parameters; none
    where nothing differs from training every parameter at ``lr``.

    The backbone is found by parameter-name prefix: ``settings.backbone_prefix``, else
    ``_interop.backbone_prefixes``. ``backbone_lr_mult="auto"`` is 0.1 where the backbone
    is ``pretrained``, 1 otherwise.
    """
    prefixes = settings.backbone_prefix
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    prefixes = tuple(prefixes) if prefixes is not None else backbone_prefixes(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    backbone = [p for n, p in named if n.startswith(prefixes)] if prefixes else []
    if settings.backbone_prefix is not None and not backbone:
        first = f" (names start like {named[0][0]!r})" if named else ""
        raise ValueError(f"backbone_prefix {settings.backbone_prefix!r} matches no trainable "
                         f"parameter of the network{first}")
    mult = settings.backbone_lr_mult
    if mult == "auto":
        mult = 0.1 if backbone and pretrained else 1.0
    if (settings.freeze_backbone_epochs or mult != 1.0) and not backbone:
        raise ValueError("freeze_backbone_epochs and backbone_lr_mult need a backbone, "
                         "and none was found in the network: give backbone_prefix")
    out = {}
    if backbone and mult != 1.0:
        ids = {id(p) for p in backbone}
        head = [p for _, p in named if id(p) not in ids]
        out["param_groups"] = [{"params": backbone, "peak_lr": settings.lr * mult},
                               {"params": head, "peak_lr": settings.lr}]
    if settings.freeze_backbone_epochs or settings.freeze_bn or (backbone and mult == 0):
        out["on_epoch"] = Freezer(backbone, prefixes, settings.freeze_backbone_epochs,
                                  settings.freeze_bn, mult == 0)
    return out


class Freezer:
    """``on_epoch`` of ``_training.train``: the backbone's parameters (those that trained
    at the start) frozen for the first ``epochs`` (or always, at a zero learning rate),
    with its batch norm statistics; every batch norm's statistics kept with
    ``freeze_bn``. ``restore`` gives the parameters their gradients back."""

    def __init__(self, backbone, prefixes, epochs, freeze_bn, always):
        self.backbone, self.prefixes = backbone, tuple(prefixes)
        self.epochs, self.freeze_bn, self.always = epochs, freeze_bn, always

    def __call__(self, model, epoch):
        torch = require_torch()
        frozen = self.always or epoch <= self.epochs
        for p in self.backbone:
            p.requires_grad_(not frozen)
        for name, m in model.named_modules():
            if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                continue
            in_backbone = bool(self.prefixes) and (name + ".").startswith(self.prefixes)
            if self.freeze_bn or (frozen and in_backbone):
                m.eval()

    def restore(self):
        for p in self.backbone:
            p.requires_grad_(True)
