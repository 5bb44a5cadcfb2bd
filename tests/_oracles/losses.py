"""Oracles of ``hybridseg.deep.losses``: log-softmax and labelled pixels in numpy."""

import numpy as np

VOID = 255


def np_log_softmax(x):
    """Log-softmax over axis 1 (the class axis of ``(N, K, H, W)`` logits)."""
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def np_pixels(logits, target, void=VOID):
    """Per labelled pixel: log-probabilities (P, K) and the labels (P,), from which the
    tests write ``hybridseg.deep.losses``' formulas (cross entropy, focal, Dice) in numpy."""
    logp = np.moveaxis(np_log_softmax(logits), 1, -1)
    valid = target != void
    return logp[valid], target[valid]
