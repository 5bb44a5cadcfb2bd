"""From a network's output, of any common shape, to logits and to the ``(H, W, K)`` scores
the CRF refiners take.

Networks return their logits in many wrappings: a tensor (the zoo, smp), a dict with
``"out"`` and ``"aux"`` (torchvision's segmentation models), a Hugging Face
``ModelOutput`` with ``.logits`` at a quarter of the input's size, a tuple or list whose
first entry is the logits (smp with an auxiliary head, Hugging Face's ``return_dict=False``).
``logits_of`` unwraps all of them (or applies the user's own ``output`` function) and
``resize_logits`` brings them to the input's size, bilinearly with ``align_corners=False``,
as Hugging Face's examples do.
"""

from __future__ import annotations

import numpy as np

from ._torch import require_torch

__all__ = ["logits_of", "resize_logits", "scores_from_logits"]

_KEYS = ("out", "logits")


def logits_of(raw, output=None):
    """The ``(N, K, h, w)`` logits tensor in a network's raw output.

    Parameters
    ----------
    raw : torch.Tensor, dict, ModelOutput, tuple or list
        What the network returned: a tensor; a mapping with ``"out"`` (torchvision) or
        ``"logits"`` (Hugging Face); an object with a ``logits`` attribute; a tuple or list
        whose first entry is one of these.
    output : callable, optional
        ``output(raw)`` returns the logits tensor: for any other wrapping.

    Returns
    -------
    logits : (N, K, h, w) torch.Tensor

    Raises
    ------
    TypeError
        Where nothing recognisable holds a 4-d tensor; the message says what was returned
        and how to give an ``output`` function.
    """
    torch = require_torch()
    if output is not None:
        found = output(raw)
        if not isinstance(found, torch.Tensor) or found.ndim != 4:
            raise TypeError(f"output(...) must return the (N, K, h, w) logits tensor, got "
                            f"{_describe(found)}")
        return found
    found = raw
    for _ in range(3):  # a tuple of a dict of ..., a few levels at most
        if isinstance(found, torch.Tensor):
            break
        if hasattr(found, "keys") and hasattr(found, "__getitem__"):
            key = next((k for k in _KEYS if k in found.keys()), None)
            if key is None:
                raise TypeError(f"the network returned a mapping without 'out' or 'logits' "
                                f"(keys: {sorted(map(str, found.keys()))}); give "
                                "output=<a function of the output that returns the logits>")
            found = found[key]
        elif isinstance(getattr(found, "logits", None), torch.Tensor):
            found = found.logits
        elif isinstance(found, (tuple, list)) and len(found) > 0:
            found = found[0]
        else:
            break
    if not isinstance(found, torch.Tensor) or found.ndim != 4:
        raise TypeError(f"the network returned {_describe(raw)}, where (N, K, h, w) logits "
                        "were expected (a tensor, a dict with 'out' or 'logits', an object "
                        "with .logits, or a tuple whose first entry is one); give "
                        "output=<a function of the output that returns the logits>")
    return found


def resize_logits(logits, size):
    """``(N, K, h, w)`` logits resized to ``size = (H, W)`` (bilinear, ``align_corners=
    False``); unchanged when already that size."""
    torch = require_torch()
    size = tuple(int(s) for s in size)
    if tuple(logits.shape[-2:]) == size:
        return logits
    return torch.nn.functional.interpolate(logits, size=size, mode="bilinear",
                                           align_corners=False)


def _describe(obj):
    torch = require_torch()
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}"
    return f"a {type(obj).__name__}"


def scores_from_logits(logits, *, size=None):
    """Per-image ``(H, W, K)`` float32 arrays from a batch of network outputs.

    Parameters
    ----------
    logits : (N, K, h, w) or (K, h, w) torch.Tensor or ndarray, dict, ModelOutput or tuple
        What a segmentation network returns: a tensor with the class axis first, or any
        wrapping ``logits_of`` knows (torchvision's ``{"out": ...}``, Hugging Face's
        ``.logits``, a tuple). Any device and dtype; gradients are detached.
    size : (int, int), optional
        ``(H, W)`` to resize the logits to (bilinear, ``align_corners=False``): a network
        of output stride 4 or 8 gives logits smaller than the image. By default they are
        kept at their own size.

    Returns
    -------
    scores : list of (H, W, K) ndarray of float32
        One C-contiguous array per image, class axis last, for
        ``DenseCRF().refine(image, s, kind="logits")`` or ``Unaries(images, scores,
        kind="logits")``.

    Examples
    --------
    >>> import torch
    >>> from hybridseg.deep import scores_from_logits
    >>> s = scores_from_logits({"out": torch.zeros(2, 3, 4, 5)})
    >>> len(s), s[0].shape, s[0].dtype
    (2, (4, 5, 3), dtype('float32'))
    >>> scores_from_logits(torch.zeros(1, 3, 4, 5), size=(16, 20))[0].shape
    (16, 20, 3)
    """
    torch = require_torch()
    if isinstance(logits, np.ndarray):
        if logits.dtype.kind not in "fiub":
            raise TypeError(f"logits must be numeric, got dtype {logits.dtype}")
        t = torch.from_numpy(logits.astype(np.float32))
    elif isinstance(logits, torch.Tensor):
        t = logits
    else:
        try:
            t = logits_of(logits)
        except TypeError as exc:
            raise TypeError(f"logits: {exc}") from None
    t = t.detach().float().cpu()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"logits must be (N, K, H, W) or (K, H, W), got shape "
                         f"{tuple(t.shape)}")
    if 0 in t.shape:
        raise ValueError(f"logits is empty: shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("logits hold NaN or infinite values")
    if size is not None:
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                       for v in size)):
            raise ValueError(f"size must be (height, width), two positive ints, got {size!r}")
        t = resize_logits(t, size)
    return [np.ascontiguousarray(a.permute(1, 2, 0).numpy()) for a in t]
