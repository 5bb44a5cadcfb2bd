import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import KFold
from sklearn.utils import _safe_indexing

from hybridseg import Unaries


def make(rng, n=4, k=3, kind="proba"):
    images = [rng.integers(0, 255, (5 + i, 7, 3)).astype(np.uint8) for i in range(n)]
    if kind == "proba":
        scores = [rng.dirichlet(np.ones(k), size=im.shape[:2]) for im in images]
    else:
        scores = [rng.normal(size=(*im.shape[:2], k)) * 5 for im in images]
    return images, scores


def test_basic(rng):
    images, scores = make(rng)
    U = Unaries(images, scores)
    assert len(U) == 4 and U.n_classes == 3 and U.kind == "proba" and U.shape == (4,)
    assert all(s.dtype == np.float32 and s.flags.c_contiguous for s in U.scores)
    assert U.images[0] is images[0]  # images are not copied
    im, s = U[1]
    assert im is images[1] and s.shape == (6, 7, 3)
    assert [im.shape for im, _ in U] == [im.shape for im in images]
    assert "4 images" in repr(U) and "K=3" in repr(U)


def test_float32_scores_not_copied(rng):
    images, scores = make(rng)
    scores = [np.ascontiguousarray(s, dtype=np.float32) for s in scores]
    U = Unaries(images, scores)
    assert U.scores[0] is scores[0]


@pytest.mark.parametrize("key", [slice(1, 3), [2, 0], np.array([3, 1]), np.array(
    [True, False, True, False]), (np.array([0, 2]), Ellipsis), slice(None, None, -1)])
def test_indexing_gives_unaries(rng, key):
    images, scores = make(rng)
    U = Unaries(images, scores)
    sub = U[key]
    idx = np.arange(4)[key[0] if isinstance(key, tuple) else key]
    assert isinstance(sub, Unaries) and len(sub) == len(idx) and sub.kind == U.kind
    for j, i in enumerate(idx):
        assert sub.images[j] is images[i]
        np.testing.assert_array_equal(sub.scores[j], U.scores[i])


def test_bad_indices(rng):
    U = Unaries(*make(rng))
    with pytest.raises(IndexError):
        U[[0, 7]]
    with pytest.raises(IndexError):
        U[np.array([True, False])]
    with pytest.raises(IndexError):
        U[0, 1]
    with pytest.raises(IndexError):
        U[np.array([0.5])]
    with pytest.raises(IndexError):
        U[9]


def test_sklearn_splitting(rng):
    U = Unaries(*make(rng, n=6))
    for _, test in KFold(3).split(U):
        part = _safe_indexing(U, test)
        assert isinstance(part, Unaries) and len(part) == 2
        assert part.images[0] is U.images[test[0]]


def test_conversions(rng):
    images, logits = make(rng, kind="logits")
    U = Unaries(images, logits, kind="logits")
    P = U.to_proba()
    assert P.kind == "proba" and P.to_proba() is P
    np.testing.assert_allclose(P.scores[0].sum(-1), 1, atol=1e-5)
    L = P.to_logits()
    assert L.kind == "logits" and L.to_logits() is L
    # log-softmax differs from the logits by a per-pixel constant.
    d = L.scores[0] - U.scores[0]
    np.testing.assert_allclose(d - d[..., :1], 0, atol=1e-4)
    # zeros in probabilities give a finite log.
    Z = Unaries([images[0]], [np.eye(3)[np.zeros(images[0].shape[:2], int)]]).to_logits()
    assert np.isfinite(Z.scores[0]).all()


def test_validation_errors(rng):
    images, scores = make(rng)
    with pytest.raises(ValueError, match="different lengths"):
        Unaries(images, scores[:3])
    with pytest.raises(ValueError, match=r"scores\[1\] has shape"):
        Unaries(images, [scores[0], scores[2], scores[2], scores[3]])
    with pytest.raises(ValueError, match=r"scores\[2\] has 4 classes, expected 3"):
        Unaries(images, [*scores[:2], rng.dirichlet(np.ones(4), size=(7, 7)), scores[3]])
    with pytest.raises(ValueError, match="kind='logits'"):
        Unaries(images, [s * 2 for s in scores])
    with pytest.raises(ValueError, match="kind"):
        Unaries(images, scores, kind="probs")
    bad = [s.copy() for s in scores]
    bad[0][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Unaries(images, bad, kind="logits")
    with pytest.raises(ValueError, match="empty"):
        Unaries([], [])
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        Unaries(images[:1], [np.moveaxis(scores[0], -1, 0)])
    with pytest.raises(TypeError):
        Unaries(images, None)
    with pytest.raises(TypeError, match="segmenter takes images"):
        Unaries(Unaries(images, scores), scores)


def test_stacked_arrays(rng):
    images = rng.integers(0, 255, (3, 4, 5)).astype(np.uint8)
    scores = rng.dirichlet(np.ones(2), size=(3, 4, 5))
    U = Unaries(images, scores)
    assert len(U) == 3 and U.n_classes == 2
    with pytest.raises(ValueError, match=r"\(N, H, W, K\)"):
        Unaries(images, scores[0])


@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_any_split_roundtrips(n, k, data):
    rng = np.random.default_rng(n * 10 + k)
    U = Unaries(*make(rng, n=n, k=k))
    idx = data.draw(st.lists(st.integers(0, n - 1), max_size=8))
    sub = U[np.array(idx, dtype=int)]
    assert len(sub) == len(idx)
    for j, i in enumerate(idx):
        assert sub.scores[j] is U.scores[i]


def test_in_sample_survives_slicing_conversion_and_pickling():
    import pickle

    import numpy as np

    from hybridseg import Unaries

    U = Unaries([np.zeros((3, 4), np.uint8)] * 2, [np.full((3, 4, 2), 0.5)] * 2,
                in_sample=True)
    for V in (U[:1], U[[1]], U.to_logits(), U.to_logits().to_proba(),
              pickle.loads(pickle.dumps(U))):
        assert V.in_sample
    assert not Unaries(U.images, U.scores).in_sample
    old = object.__new__(Unaries)  # as unpickled from before the attribute existed
    old.__setstate__((None, {"images": U.images, "scores": U.scores, "kind": "proba"}))
    assert not old[:1].in_sample
