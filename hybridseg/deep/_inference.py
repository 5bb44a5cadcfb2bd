"""From images to a trained network's logits: input preparation, padding, tiling, TTA.

The functions here hold no estimator state; ``CNNSegmenter`` and ``CRFRNNSegmenter`` call
them with their fitted attributes. torch is imported by the callers' ``require_torch`` and
passed nowhere: every function imports it where it runs, so the module imports without it.

- ``prepare_images``: images as standardised ``(C, H, W)`` float32
  tensors at the working scale (the one input convention of the networks);
- ``rescale``: a tensor resized by the working scale;
- ``network_logits``: a network's output of any common shape as ``(N, K, H, W)`` logits at
  the input's size;
- ``predict_logits``: logits of many images of any sizes, batched by size, padded to the
  network's stride, tiled above ``tile_size``, mirrored for test-time augmentation.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..utils._validation import as_unit_float
from ._logits import logits_of, resize_logits
from ._torch import require_torch

__all__ = [
    "amp_supported",
    "autocast",
    "batch_layout",
    "n_channels",
    "network_logits",
    "output_channels",
    "predict_logits",
    "prepare_images",
    "rescale",
]


def n_channels(image):
    """Channels of an ``(H, W)`` (1) or ``(H, W, C)`` image."""
    return 1 if image.ndim == 2 else image.shape[2]


def rescale(t, scale, mode):
    """A ``(1, C, H, W)`` tensor resized by ``scale`` (antialiased when shrinking);
    ``mode`` is ``"bilinear"`` for images, ``"nearest-exact"`` for labels."""
    torch = require_torch()
    if scale == 1.0:
        return t
    h, w = t.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if mode == "bilinear":
        return torch.nn.functional.interpolate(t, size=size, mode=mode, align_corners=False,
                                               antialias=scale < 1.0)
    return torch.nn.functional.interpolate(t, size=size, mode=mode)


def prepare_images(images, *, mean, std, scale, channels=None):
    """Images as standardised ``(C, H, W)`` float32 tensors at the working scale.

    Parameters
    ----------
    images : list of (H, W) or (H, W, C) ndarray
    mean, std : (C,) ndarray of float32
        Per-channel statistics of the images read by ``utils.as_unit_float``.
    scale : float
        Working resolution factor.
    channels : int, optional
        The channel count the network was fitted on; an image with another count raises a
        ``ValueError`` naming it.

    Returns
    -------
    tensors : list of (C, h, w) torch.Tensor
    """
    torch = require_torch()
    out = []
    for i, im in enumerate(images):
        c = n_channels(im)
        if channels is not None and c != channels:
            raise ValueError(
                f"X[{i}] has {c} channel{'s' * (c != 1)} but the network was fitted on "
                f"{channels}-channel images"
            )
        a = as_unit_float(im).reshape(im.shape[0], im.shape[1], c)
        a = (a - mean) / std
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
        out.append(rescale(t[None], scale, "bilinear")[0])
    return out


def amp_supported(device, amp="auto", *, training=True):
    """Whether mixed precision runs on ``device`` for an ``amp`` parameter.

    ``True`` turns it on on CUDA (float16) and on the CPU (bfloat16), ``False`` off.
    ``"auto"`` turns it on on CUDA, and on a CPU that computes bfloat16 in hardware
    (Intel AMX, where oneDNN's bfloat16 convolutions train 1.2 to 2.9 times as fast as
    float32: ``benchmarks/bench_amp.py``) for ``training`` only: predictions on the CPU
    stay the network's float32 output unless ``amp=True``. Where bfloat16 is emulated it
    is slower than float32, so ``"auto"`` leaves it off.
    """
    if device.type not in ("cuda", "cpu"):
        return False
    if amp != "auto":
        return bool(amp)
    if device.type == "cuda":
        return True
    if not training:
        return False
    torch = require_torch()
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


def autocast(device, enabled):
    """Mixed precision on ``device`` when ``enabled`` (float16 on CUDA, bfloat16 on the
    CPU), else a context that does nothing."""
    torch = require_torch()
    if enabled:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def batch_layout(device, enabled):
    """The memory format of 4-D batches (and of a network while it trains) under
    mixed precision on ``device``: channels-last for bfloat16 on the CPU, where oneDNN's
    convolutions avoid a reorder at every layer; None (as they are) otherwise."""
    torch = require_torch()
    return torch.channels_last if enabled and device.type == "cpu" else None


def network_logits(model, x, output=None):
    """``model(x)`` as ``(N, K, H, W)`` logits at the input's size.

    The network's output may be wrapped in any way ``_logits.logits_of`` knows (a tensor,
    torchvision's ``{"out": ...}``, Hugging Face's ``.logits``, a tuple), or be unwrapped by
    ``output``; logits at another size are resized bilinearly (``align_corners=False``).
    """
    return resize_logits(logits_of(model(x), output), x.shape[-2:])


def output_channels(model, x, *, stride, device, output=None):
    """The channels (K) of the network's logits, from a dry run on a corner of one
    prepared ``(C, H, W)`` image; a ``ValueError`` saying what failed where the network
    does not take it. The network's train/eval mode is left as it was."""
    torch = require_torch()
    s = stride
    h, w = x.shape[-2:]
    probe = x[None, :, : max(s, (min(h, 64) // s) * s), : max(s, (min(w, 64) // s) * s)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = network_logits(model, probe.to(device), output)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"the network failed on an input batch of shape "
                         f"{tuple(probe.shape)}: {exc}") from exc
    finally:
        model.train(was_training)
    return int(out.shape[1])


def predict_logits(model, xs, sizes, *, stride, tile_size, batch_size, tta, device,
                   use_amp=False, output=None):
    """Logits of prepared images, back at their original sizes.

    Images of one size run in batches of ``batch_size``; each batch is padded to a
    multiple of ``stride`` (reflected, or replicated where the image is smaller than the
    padding), cut into overlapping tiles blended by a smooth window when a side exceeds
    ``tile_size``, and with ``tta`` averaged with its mirror image.

    Parameters
    ----------
    model : torch.nn.Module
        The network, in eval mode on ``device``.
    xs : list of (C, h, w) torch.Tensor
        Prepared images (``prepare_images``).
    sizes : list of (int, int)
        The size each image's logits are resized to (its size before ``scale``).
    stride, tile_size, batch_size : int
    tta : bool
    device : torch.device
    use_amp : bool, default=False
        Mixed precision (``autocast``), channels-last batches on the CPU.
    output : callable, optional
        Unwraps the network's output (``network_logits``).

    Returns
    -------
    logits : list of (H, W, K) ndarray of float32
    """
    torch = require_torch()
    F = torch.nn.functional
    out = [None] * len(xs)
    groups = {}
    for i, t in enumerate(xs):
        groups.setdefault(tuple(t.shape[-2:]), []).append(i)
    model.eval()
    bs = max(1, int(batch_size))

    def padded(batch):
        return _padded_forward(model, batch, stride, tta, device, use_amp, output)

    with torch.no_grad():
        for idx in groups.values():
            for b in range(0, len(idx), bs):
                chunk = idx[b:b + bs]
                batch = torch.stack([xs[i] for i in chunk])
                if max(batch.shape[-2:]) > tile_size:
                    z = _tiled(padded, batch, stride, tile_size)
                else:
                    z = padded(batch)
                for j, i in enumerate(chunk):
                    zi = z[j:j + 1]
                    if tuple(zi.shape[-2:]) != tuple(sizes[i]):
                        zi = F.interpolate(zi, size=tuple(sizes[i]), mode="bilinear",
                                           align_corners=False)
                    out[i] = np.ascontiguousarray(zi[0].permute(1, 2, 0).float().cpu().numpy())
    return out


def _padded_forward(model, batch, stride, tta, device, use_amp, output=None):
    """Logits of a ``(N, C, h, w)`` batch, on the CPU: padded to the stride and cropped
    back."""
    torch = require_torch()
    F = torch.nn.functional
    h, w = batch.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    x = batch.to(device)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    layout = batch_layout(device, use_amp)
    if layout is not None:
        x = x.contiguous(memory_format=layout)
    with autocast(device, use_amp):
        z = network_logits(model, x, output)
        if tta:
            z = 0.5 * (z + network_logits(model, x.flip(-1), output).flip(-1))
    return z[..., :h, :w].float().cpu()


def _tiled(forward, batch, stride, tile_size):
    """``forward`` over overlapping tiles of ``tile_size`` (three quarters apart), blended
    with ``_window``."""
    torch = require_torch()
    n, _, h, w = batch.shape
    t = max(stride, (tile_size // stride) * stride)
    step = max(stride, ((3 * t // 4) // stride) * stride)
    ys = list(range(0, max(h - t, 0) + 1, step))
    xs = list(range(0, max(w - t, 0) + 1, step))
    if ys[-1] + t < h:
        ys.append(h - t)
    if xs[-1] + t < w:
        xs.append(w - t)
    acc = None
    norm = torch.zeros((1, 1, h, w))
    for y0 in ys:
        for x0 in xs:
            tile = batch[..., y0:y0 + t, x0:x0 + t]
            th, tw = tile.shape[-2:]
            z = forward(tile)
            win = _window(th, tw)
            if acc is None:
                acc = torch.zeros((n, z.shape[1], h, w))
            acc[..., y0:y0 + th, x0:x0 + tw] += z * win
            norm[..., y0:y0 + th, x0:x0 + tw] += win
    return acc / norm


def _window(h, w):
    """A smooth blending window, highest in the middle, never zero (tiles at the border
    keep their edge pixels)."""
    torch = require_torch()

    def ramp(n):
        r = torch.minimum(torch.arange(n) + 1.0, torch.arange(n, 0, -1).float())
        return torch.clamp(r / max(n / 4, 1.0), max=1.0)

    return (ramp(h)[:, None] * ramp(w)[None, :])[None, None]
