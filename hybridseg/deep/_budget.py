"""Training under a time budget: the working scale, crop and epochs chosen from the data
and from the time a training step takes on this machine, measured before training.

A network trained from scratch needs some thousand optimisation steps before it beats a
pixel classifier; a budget that allows a few epochs at full resolution gives a network
worse than one that trains longer at a lower resolution or on smaller crops. The plan
asks for ``TARGET_EPOCHS`` passes over the images (at least ``MIN_STEPS``, at most
``MAX_STEPS`` steps), and finds the highest working scale at which that many steps fit in
the budget, on crops no smaller than ``MIN_CROP`` of the image side: crops first (they keep
the resolution that small objects need), then a lower scale. Each candidate is timed with a
few training steps of a copy of the network on random crops, so the plan holds for this
network on this machine, whatever its speed.

``plan_training`` holds no estimator state; ``CNNSegmenter.fit`` calls it when
``max_time`` is set and ``scale``, ``crop_size`` or ``epochs`` are ``"auto"``, and keeps the
result as ``training_plan_``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import time

from ._inference import autocast, batch_layout, network_logits
from ._torch import require_torch
from ._training import round_to_stride

__all__ = ["MAX_STEPS", "MIN_CROP", "MIN_STEPS", "TARGET_EPOCHS", "TrainingPlan",
           "plan_training", "target_steps"]

#: Passes over the training images the plan asks for.
TARGET_EPOCHS = 30
#: Fewest and most optimisation steps the plan asks for, whatever the image count.
MIN_STEPS, MAX_STEPS = 300, 3000
#: Smallest crop side, as a fraction of the working image's side.
MIN_CROP = 0.5
#: Share of the budget the plan gives to training steps (the rest: validation, the
#: timing itself, the first and last epochs' overheads).
STEP_SHARE = 0.85
#: Working scales tried, highest first (never above the images' own resolution).
SCALES = (1.0, 0.75, 0.5, 0.375, 0.25, 0.1875, 0.125)
#: Smallest side of a working image, in pixels (and at least two network strides).
MIN_SIDE = 64
#: Timings of candidates at most.
MAX_PROBES = 8


@dataclasses.dataclass
class TrainingPlan:
    """How a budgeted training run goes, and why.

    Attributes
    ----------
    scale : float
        Working scale of training and prediction.
    crop : (int, int) or None
        Training crop at the working scale (None: whole images).
    epochs : int
        The most epochs to run: half as many again as the budget allows at
        ``step_time``, since the budget ends training (and its learning-rate schedule,
        which runs on time) first.
    step_time : float
        Seconds one training step took, measured.
    steps : int
        Steps the budget allows.
    target_steps : int
        Steps the plan asked for.
    budget_needed : float
        Seconds of budget for ``target_steps`` at full resolution on whole images
        (estimated from the timings).
    timings : list of ((int, int), float)
        Every crop timed, and its seconds per step.
    note : str
        The plan in words.
    planning_time : float
        Seconds the timing took (out of the budget).
    """

    scale: float
    crop: tuple | None
    epochs: int
    step_time: float
    steps: int
    target_steps: int
    budget_needed: float
    timings: list
    note: str
    planning_time: float = 0.0


def target_steps(n_images, batch_size):
    """Optimisation steps the plan asks for: ``TARGET_EPOCHS`` passes over ``n_images``
    in batches of ``batch_size``, within ``[MIN_STEPS, MAX_STEPS]``."""
    per_epoch = math.ceil(n_images / max(1, min(batch_size, n_images)))
    return int(min(max(TARGET_EPOCHS * per_epoch, MIN_STEPS), MAX_STEPS))


def plan_training(model, sizes, *, max_time, batch_size, stride, device, in_channels,
                  scale="auto", crop="auto", epochs="auto", output=None, use_amp=False,
                  verbose=0):
    """The working scale, crop and epochs of a training run that fits ``max_time``.

    Parameters
    ----------
    model : torch.nn.Module
        The network, on ``device`` (a copy is timed; the network is not changed).
    sizes : list of (int, int)
        Sizes ``(H, W)`` of the training images, at their own resolution.
    max_time : float
        The budget in seconds.
    batch_size : int
        Crops per step.
    stride : int
        The network's stride (crops are multiples of it).
    device : torch.device
    in_channels : int
    scale : "auto" or float
        A fixed working scale, or ``"auto"`` to choose one.
    crop : "auto", None or (int, int)
        A fixed crop (None: whole images), or ``"auto"`` to choose one.
    epochs : "auto" or int
        Fixed epochs, or ``"auto"``: as many as the budget allows.
    output : callable, optional
        Unwraps the network's output.
    use_amp : bool
    verbose : int
        1 prints the plan's note.

    Returns
    -------
    plan : TrainingPlan
    """
    began = time.perf_counter()
    n = len(sizes)
    bs = max(1, min(batch_size, n))
    h = max(s[0] for s in sizes)
    w = max(s[1] for s in sizes)
    want = target_steps(n, bs)
    usable = STEP_SHARE * max_time
    t_target = usable / want
    floor = max(MIN_SIDE, 2 * stride)
    if scale != "auto":
        scales = [float(scale)]
    elif crop != "auto":  # a given crop costs the same at every scale: the highest
        scales = [1.0]
    else:
        scales = [s for s in SCALES if s * min(h, w) >= floor] or [1.0]
    timer = _StepTimer(model, bs, in_channels, device, output, use_amp)

    def full(s):
        return round_to_stride(s * h, stride), round_to_stride(s * w, stride)

    def crop_at(s, f):
        fh, fw = full(s)
        return min(round_to_stride(f * fh, stride), fh), min(round_to_stride(f * fw, stride), fw)

    def predict(c):  # time in proportion to pixels, from the largest crop timed
        (rh, rw), rt = max(timer.timings, key=lambda r: r[0][0] * r[0][1])
        return rt * (c[0] * c[1]) / (rh * rw)

    def fits(t):
        return t <= 1.1 * t_target

    timer.time(full(scales[-1]) if crop == "auto" else _fixed(crop, full(scales[-1])))
    chosen = None
    for s in scales:
        if crop != "auto":
            chosen = (s, _fixed(crop, full(s)), timer.time(_fixed(crop, full(s))))
            break
        f = min(1.0, math.sqrt(t_target / predict(full(s))))
        if f < MIN_CROP:
            # The prediction extrapolates from smaller crops, where a step's fixed costs
            # weigh more (bfloat16 on the CPU: the layout reorders); the smallest crop
            # allowed at this scale is timed before the scale is given up.
            if timer.probes >= MAX_PROBES:
                continue
            t = timer.time(crop_at(s, MIN_CROP))
            if not fits(t):
                continue
            f = min(1.0, MIN_CROP * math.sqrt(t_target / t))
        c = crop_at(s, f)
        t = timer.time(c)
        if not fits(t) and timer.probes < MAX_PROBES:
            f *= math.sqrt(t_target / t)  # the timing says how much smaller
            if f < MIN_CROP:
                continue
            c = crop_at(s, f)
            t = timer.time(c)
        if fits(t):
            chosen = (s, c, t)
            break
    if chosen is None or not fits(chosen[2]):
        # nothing fits: the smallest scale on the smallest crops
        s = scales[-1]
        c = crop_at(s, MIN_CROP) if crop == "auto" else _fixed(crop, full(s))
        chosen = (s, c, timer.time(c))
    s, c, t = chosen
    c = None if c == full(s) else c
    steps = max(1, int(usable / t))
    per_epoch = math.ceil(n / bs)
    # the epochs bound training loosely: the budget ends it (and its schedule) first,
    # as steps run a little faster or slower than timed
    n_epochs = math.ceil(1.5 * steps / per_epoch) if epochs == "auto" else int(epochs)
    needed = _budget_needed(timer.timings, full(1.0), want)
    size = "whole images" if c is None else f"{c[0]}x{c[1]} crops"
    fh, fw = full(s)
    note = (f"{max_time:g} s budget: scale {s:g} ({fh}x{fw}), {size}, batch {bs}: "
            f"{t:.3g} s per step, about {steps} steps ({steps / per_epoch:.1f} epochs) of "
            f"the {want} asked; full resolution on whole images would need about "
            f"{needed / 60:.0f} min")
    if verbose:
        print(f"training plan: {note}", flush=True)
    return TrainingPlan(scale=s, crop=c, epochs=n_epochs, step_time=t, steps=steps,
                        target_steps=want, budget_needed=needed,
                        timings=list(timer.timings), note=note,
                        planning_time=time.perf_counter() - began)


def _fixed(crop, whole):
    """A crop given by the user (None: the whole image)."""
    if crop is None:
        return whole
    if isinstance(crop, numbers.Integral):
        return int(crop), int(crop)
    return int(crop[0]), int(crop[1])


def _budget_needed(timings, size, want):
    """Seconds for ``want`` steps on crops of ``size``, extrapolated from the timing of
    the largest crop timed (time in proportion to pixels)."""
    (ch, cw), t = max(timings, key=lambda r: r[0][0] * r[0][1])
    return want * t * (size[0] * size[1]) / (ch * cw) / STEP_SHARE


class _StepTimer:
    """Seconds per training step (forward, backward, optimiser step) of a copy of a
    network, on random crops of a given size; a warm-up step first, then the faster of
    two. Torch's random state is left as it was."""

    def __init__(self, model, batch_size, in_channels, device, output, use_amp):
        self.model, self.bs, self.c = model, batch_size, in_channels
        self.device, self.output, self.use_amp = device, output, use_amp
        self.timings, self.probes, self._copy = [], 0, None

    def time(self, crop):
        for c, t in self.timings:
            if c == tuple(crop):
                return t
        torch = require_torch()
        layout = batch_layout(self.device, self.use_amp)
        if self._copy is None:
            self._copy = copy.deepcopy(self.model).train()
            if layout is not None:  # as _training.train trains it
                self._copy.to(memory_format=layout)
        net = self._copy
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.0)
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            torch.manual_seed(0)
            x = torch.randn(self.bs, self.c, *crop, device=self.device)
            if layout is not None:
                x = x.contiguous(memory_format=layout)
            best = math.inf
            for i in range(3 if self.bs * crop[0] * crop[1] < 2e6 else 2):
                if cuda:
                    torch.cuda.synchronize(self.device)
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                try:
                    with autocast(self.device, self.use_amp):
                        loss = network_logits(net, x, self.output).float().square().mean()
                    loss.backward()
                except (RuntimeError, TypeError, ValueError) as exc:
                    raise ValueError(f"the network failed on a training batch of shape "
                                     f"{tuple(x.shape)} (timing the budget plan): "
                                     f"{exc}") from exc
                opt.step()
                if cuda:
                    torch.cuda.synchronize(self.device)
                if i:
                    best = min(best, time.perf_counter() - t0)
        self.probes += 1
        self.timings.append((tuple(crop), best))
        return best
