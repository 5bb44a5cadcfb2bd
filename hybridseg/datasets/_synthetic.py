"""Stand-in class scores made from label maps: a controlled "model" for experiments."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.ndimage import gaussian_filter

from ..utils._param_validation import Interval, validate_parameter_constraints
from ..utils._validation import check_label_maps, check_n_classes

__all__ = ["make_noisy_scores"]


def make_noisy_scores(
    y,
    n_classes,
    *,
    blur=4.0,
    scale=10.0,
    noise=3.0,
    n_patches=3,
    patch_boost=10.0,
    ignore_index=255,
    random_state=None,
):
    """Simulate a mediocre model's logits from the true label maps.

    For refiners and experiments that need scores which are *not* the truth but are
    related to it in known ways: the one-hot truth blurred with a Gaussian (soft,
    misplaced boundaries), scaled, plus Gaussian noise on every pixel and class (speckle),
    plus ``n_patches`` rectangles per image in which a wrong class is favoured (blunders).
    Void pixels start with no class at all.

    Parameters
    ----------
    y : sequence of (H, W) array_like of int, or (N, H, W) ndarray
        True label maps, ``ignore_index`` for void pixels.
    n_classes : int
        Number of classes K.
    blur : float, default=4.0
        Standard deviation of the Gaussian blur, in pixels (0: none).
    scale : float, default=10.0
        Logit of a class fully present after the blur.
    noise : float, default=3.0
        Standard deviation of the noise, in logit units.
    n_patches : int, default=3
        Rectangles (a tenth to a fifth of the image's height and width) per image pushed
        towards a class other than the most frequent true class inside them.
    patch_boost : float, default=10.0
        Logit added to the wrong class inside a rectangle.
    ignore_index : int, default=255
        Label of void pixels.
    random_state : int or numpy.random.Generator, optional
        Seed of the noise and the rectangles.

    Returns
    -------
    logits : list of (H, W, K) ndarray of float32
        Use with ``kind="logits"``.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.datasets import make_noisy_scores
    >>> y = [np.repeat(np.arange(4), 8)[None].repeat(32, 0)]
    >>> logits = make_noisy_scores(y, 4, random_state=0)
    >>> logits[0].shape, logits[0].dtype
    ((32, 32, 4), dtype('float32'))
    """
    n_classes = check_n_classes(n_classes)
    labels = check_label_maps(y, name="y", n_classes=n_classes, ignore_index=ignore_index)
    # Bounds that keep every logit finite in float32.
    validate_parameter_constraints({
        "blur": [Interval(numbers.Real, 0, 1e6)],
        "scale": [Interval(numbers.Real, -1e30, 1e30)],
        "noise": [Interval(numbers.Real, 0, 1e30)],
        "n_patches": [Interval(numbers.Integral, 0, 10_000)],
        "patch_boost": [Interval(numbers.Real, -1e30, 1e30)],
    }, {"blur": blur, "scale": scale, "noise": noise, "n_patches": n_patches,
        "patch_boost": patch_boost}, caller_name="make_noisy_scores")
    rng = np.random.default_rng(random_state)
    out = []
    for label in labels:
        h, w = label.shape
        onehot = (label[..., None] == np.arange(n_classes)).astype(np.float32)
        if blur > 0:
            onehot = gaussian_filter(onehot, sigma=(blur, blur, 0))
        logits = np.float32(scale) * onehot
        logits += rng.normal(0.0, noise, size=logits.shape).astype(np.float32)
        for _ in range(int(n_patches)):
            ph = int(rng.integers(max(1, h // 10), max(2, h // 5)))
            pw = int(rng.integers(max(1, w // 10), max(2, w // 5)))
            top, left = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            inside = label[top:top + ph, left:left + pw]
            counts = np.bincount(inside[inside != ignore_index].ravel(),
                                 minlength=n_classes)
            wrong = [c for c in range(n_classes) if c != counts.argmax()]
            if wrong:
                logits[top:top + ph, left:left + pw, int(rng.choice(wrong))] += patch_boost
        out.append(logits)
    return out
