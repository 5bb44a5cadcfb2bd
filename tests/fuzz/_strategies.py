"""Hypothesis strategies for what users hand hybridseg: images, class scores, label maps
and parameters. Mostly valid, and now and then broken in one way: every dtype (big-endian
and bool too), NaN and infinities, huge values, 0-size, 1x1, ragged, wrong layouts,
extreme parameters."""

import numpy as np
from hypothesis import strategies as st

VALID_IMAGE = ["u1", "f4", "u2", "f8"]
ODD_IMAGE = ["i4", "i8", "f2", "?", ">u2", ">i4", ">f4", ">f8"]
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30, 65535.0]


def rarely(draw):
    """True about one draw in six (hypothesis prefers the simple answer, False)."""
    return draw(st.integers(0, 5)) == 5


def side(max_side):
    return st.integers(1, max_side) | st.just(0)


@st.composite
def arrays(draw, shape, dtypes=None, high=255, special=True):
    """An array of ``shape`` (a tuple or a strategy of one), of a common dtype or, rarely,
    an odd one, with a special value now and then where the dtype holds one."""
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    pool = dtypes or (ODD_IMAGE if rarely(draw) else VALID_IMAGE)
    dtype = np.dtype(draw(st.sampled_from(pool)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "b":
        a = rng.random(shape) < 0.5
    elif dtype.kind in "ui":
        top = min(int(np.iinfo(dtype).max), high)
        a = rng.integers(0, top, size=shape, endpoint=True)
    else:
        a = rng.random(shape) * (1.0 if draw(st.booleans()) else high)
        if special and a.size and rarely(draw):
            idx = tuple(rng.integers(0, s) for s in shape)
            a[idx] = draw(st.sampled_from(SPECIAL))
    with np.errstate(over="ignore", invalid="ignore"):
        return a.astype(dtype)


def shapes(min_side=1, max_side=12, channels=(None, 3, 1, 4, 2)):
    """``(H, W)`` or ``(H, W, C)``."""
    s = st.integers(min_side, max_side)
    return st.tuples(s, s, st.sampled_from(channels)).map(
        lambda t: t[:2] if t[2] is None else t)


@st.composite
def image_and_scores(draw, max_side=12):
    """An image, ``(H, W, K)`` scores and their kind: matching sizes, probabilities or
    logits; rarely a mismatch, an empty side, no class, scores of another dtype, or the
    wrong kind."""
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    if rarely(draw):
        h = 0
    c = draw(st.sampled_from([3, None, 1])) if not rarely(draw) else draw(
        st.sampled_from([4, 0, 2]))
    image = draw(arrays((h, w) if c is None else (h, w, c)))
    k = draw(st.integers(2, 5)) if not rarely(draw) else draw(st.sampled_from([1, 0, 300]))
    sh, sw = (h, w) if not rarely(draw) else (h + 1, w)
    logits = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(
        0, draw(st.sampled_from([1.0, 10.0])), (sh, sw, k)).astype(np.float32)
    kind = draw(st.sampled_from(["proba", "logits"]))
    if kind == "proba" and k:
        e = np.exp(logits - logits.max(-1, keepdims=True))
        logits = e / e.sum(-1, keepdims=True)
    if rarely(draw) and logits.size:
        logits.flat[0] = draw(st.sampled_from(SPECIAL))
    if rarely(draw):
        with np.errstate(invalid="ignore", over="ignore"):
            logits = logits.astype(draw(st.sampled_from([">f4", "f8", "f2", "i4"])))
    if rarely(draw):  # the other kind than the scores are
        kind = {"proba": "logits", "logits": "proba"}[kind]
    return image, logits, kind


@st.composite
def label_pairs(draw, max_side=10, max_images=3, n_classes=6):
    """Lists of true and predicted label maps: integer maps in ``[0, n_classes)`` with
    some void (255); rarely ragged, empty, of floats, bools or big-endian ints."""
    n = draw(st.integers(1, max_images)) if not rarely(draw) else 0
    t, p = [], []
    for _ in range(n):
        shape = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
        pshape = shape if not rarely(draw) else (shape[0] + 1, shape[1])
        dt = ["u1", "i8", "i4"] if not rarely(draw) else ["f4", "?", ">i4", "u2", "f8"]
        a = draw(arrays(shape, dtypes=dt, high=n_classes - 1, special=False))
        b = draw(arrays(pshape, dtypes=dt, high=n_classes - 1, special=False))
        if a.size and a.dtype == np.uint8 and draw(st.booleans()):
            a.flat[0] = 255  # void
        t.append(a)
        p.append(b)
    return t, p


@st.composite
def numbers_any(draw, usual=(1.0, 3.0, 10.0)):
    """Parameter values a user might type: mostly ``usual``, rarely negatives, zero, tiny,
    huge, NaN, inf, strings, None, bools."""
    if rarely(draw):
        return draw(st.sampled_from([0, -1, 1e-12, 1e12, 1e300, np.nan, np.inf, -np.inf,
                                     True, None, "2", (1, 2)]))
    return draw(st.sampled_from(list(usual)))
