"""Conversions between the two kinds of class scores: probabilities and logits."""

from __future__ import annotations

import numpy as np

__all__ = ["log_proba", "softmax", "to_logits", "to_proba"]

# Probabilities are clipped to this floor before a log so that zeros give a large finite
# cost, not -inf (float32's smallest normal number is ~1.2e-38; its log is about -87).
PROBA_FLOOR = 1e-30


def softmax(logits, axis=-1):
    """Numerically stable softmax.

    Parameters
    ----------
    logits : ndarray of float
        Scores; any shape.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    proba : ndarray of float32 (or the input's float dtype when it is float64)
        Non-negative, summing to one along ``axis``.
    """
    x = np.asarray(logits)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = x.astype(dtype, copy=True)
    x -= x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


def log_proba(proba):
    """Natural log of probabilities, with zeros mapped to ``log(1e-30)`` instead of -inf."""
    p = np.asarray(proba)
    dtype = np.float64 if p.dtype == np.float64 else np.float32
    out = np.maximum(p.astype(dtype, copy=False), PROBA_FLOOR)
    return np.log(out, out=out)


def to_proba(scores, kind):
    """Return probabilities from scores of the given ``kind`` (``"proba"`` or ``"logits"``)."""
    if kind == "proba":
        return np.asarray(scores)
    if kind == "logits":
        return softmax(scores, axis=-1)
    raise ValueError(f"kind must be 'proba' or 'logits', got {kind!r}")


def to_logits(scores, kind):
    """Return logits (log-probabilities up to a per-pixel constant) from ``kind`` scores."""
    if kind == "logits":
        return np.asarray(scores)
    if kind == "proba":
        return log_proba(scores)
    raise ValueError(f"kind must be 'proba' or 'logits', got {kind!r}")
