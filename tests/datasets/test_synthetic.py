"""make_noisy_scores: shapes, seeding, and how its knobs move the scores."""

import numpy as np
import pytest

from hybridseg.datasets import make_noisy_scores


def stripes(h=40, w=48, k=4):
    return np.repeat(np.arange(w) * k // w, 1)[None].repeat(h, 0).astype(np.uint8)


def test_shapes_dtype_and_seeding():
    y = [stripes(), stripes(30, 20)]
    a = make_noisy_scores(y, 4, random_state=0)
    b = make_noisy_scores(y, 4, random_state=0)
    assert [s.shape for s in a] == [(40, 48, 4), (30, 20, 4)]
    assert all(s.dtype == np.float32 for s in a)
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s, t)
    c = make_noisy_scores(y, 4, random_state=1)
    assert not np.array_equal(a[0], c[0])


def test_no_noise_no_blur_no_patches_is_the_scaled_truth():
    y = stripes()
    y[0, 0] = 255
    (s,) = make_noisy_scores([y], 4, blur=0, noise=0, n_patches=0, scale=2.0)
    expected = 2.0 * (y[..., None] == np.arange(4))
    np.testing.assert_array_equal(s, expected.astype(np.float32))


def test_noise_and_patches_make_errors():
    y = stripes()
    (clean,) = make_noisy_scores([y], 4, noise=0, n_patches=0, random_state=0)
    (noisy,) = make_noisy_scores([y], 4, noise=3.0, n_patches=3, random_state=0)
    acc_clean = np.mean(clean.argmax(-1) == y)
    acc_noisy = np.mean(noisy.argmax(-1) == y)
    assert acc_clean > 0.9 and acc_noisy < acc_clean


def test_bad_input():
    with pytest.raises(ValueError, match="n_classes"):
        make_noisy_scores([stripes()], 0)
    with pytest.raises(ValueError, match="y"):
        make_noisy_scores([stripes(k=4)], 2)
    with pytest.raises(ValueError, match="blur"):
        make_noisy_scores([stripes()], 4, blur=-1)


@pytest.mark.parametrize("params", [{"scale": np.nan}, {"patch_boost": np.inf},
                                    {"noise": 1e300}, {"blur": -1}, {"n_patches": 2.5}])
def test_parameters_that_would_give_non_finite_scores_are_refused(params):
    y = [np.zeros((8, 8), np.uint8)]
    with pytest.raises(ValueError, match=f"'{next(iter(params))}' parameter"):
        make_noisy_scores(y, 2, **params)
