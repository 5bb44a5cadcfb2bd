"""From a torch model's output to the ``(H, W, K)`` scores the CRF refiners take."""

from __future__ import annotations

import numpy as np

from ._torch import require_torch

__all__ = ["scores_from_logits"]


def scores_from_logits(logits):
    """Per-image ``(H, W, K)`` float32 arrays from a batch of network outputs.

    Parameters
    ----------
    logits : (N, K, H, W) or (K, H, W) torch.Tensor or ndarray, or dict
        What a segmentation network returns: a tensor with the class axis first, or a
        torchvision-style dict whose ``"out"`` entry is one. Any device and dtype;
        gradients are detached.

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
    """
    torch = require_torch()
    if isinstance(logits, dict):
        if "out" not in logits:
            raise ValueError(f"logits is a dict without an 'out' entry (keys: "
                             f"{sorted(logits)}); pass the logits tensor itself")
        logits = logits["out"]
    if isinstance(logits, torch.Tensor):
        arr = logits.detach().float().cpu().numpy()
    elif isinstance(logits, np.ndarray):
        arr = logits.astype(np.float32, copy=False)
    else:
        raise TypeError(f"logits must be a torch tensor, an ndarray or a dict with 'out', "
                        f"got {type(logits).__name__}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"logits must be (N, K, H, W) or (K, H, W), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"logits is empty: shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("logits hold NaN or infinite values")
    return [np.ascontiguousarray(a.transpose(1, 2, 0)) for a in arr]
