"""pixel_features: shapes, names, scaling, exact position, oracles, and bad input."""

import numpy as np
import pytest
from _oracles import interior_hessian_eigs, interior_sobel_magnitude
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.color import rgb2lab

from hybridseg.classical._features import color_sigmas, pixel_features


def smooth_image(rng, shape):
    """A random image with some structure (blurred noise), uint8."""
    noise = rng.uniform(0, 255, shape)
    sig = (2, 2, 0) if len(shape) == 3 else 2
    return np.clip(ndi.gaussian_filter(noise, sig) * 3 - 255, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("shape", "kwargs", "n_features"),
    [
        ((9, 11), {}, 5 * 4 + 2),
        ((9, 11, 1), {}, 5 * 4 + 2),
        ((9, 11, 3), {}, 5 * 4 + 2 * 2 + 2),
        ((9, 11, 3), {"color": "rgb"}, 5 * 4 + 3 * 2 + 2),
        ((9, 11, 3), {"color": None}, 5 * 4 + 2),
        ((9, 11, 4), {}, 4 * 5 * 4 + 2),
        ((9, 11, 2), {"color": "rgb", "sigmas": 1.5}, 2 * 4 + 2),
        ((9, 11, 3), {"sigmas": (1,), "edges": False, "texture": False}, 1 + 2 + 2),
        ((9, 11, 3), {"sigmas": (1, 3), "superpixels": 4}, 8 + 4 + 2 + 3 * 2 + 1),
        ((9, 11), {"sigmas": (1,), "superpixels": 4, "position": False}, 4 + 2 + 1),
        ((9, 11, 4), {"sigmas": (1,), "intensity": False, "superpixels": 4}, 4 * 3 + 2
         + 4 * 2 + 1),
    ],
)
def test_shapes_and_names(rng, shape, kwargs, n_features):
    image = rng.integers(0, 256, shape).astype(np.uint8)
    f, names = pixel_features(image, return_names=True, **kwargs)
    assert f.shape == (*shape[:2], n_features)
    assert f.dtype == np.float32 and f.flags.c_contiguous
    assert len(names) == n_features == len(set(names))
    assert np.isfinite(f).all()
    np.testing.assert_array_equal(f, pixel_features(image, **kwargs))


def test_names_follow_the_documented_order(rng):
    image = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    _, names = pixel_features(image, sigmas=(2, 1, 4), superpixels=3, return_names=True)
    assert names[:4] == ["intensity_s2", "edges_s2", "hessian_max_s2", "hessian_min_s2"]
    assert names[12:16] == ["lab_a_s1", "lab_b_s1", "lab_a_s2", "lab_b_s2"]
    assert names[16:18] == ["row", "col"]
    assert names[18:] == ["superpixel_mean_L", "superpixel_std_L", "superpixel_mean_a",
                          "superpixel_std_a", "superpixel_mean_b", "superpixel_std_b",
                          "superpixel_size"]
    assert color_sigmas((1, 2, 4, 8, 16)) == (1, 4)
    assert color_sigmas((3,)) == (3,)


def test_gray_three_ways_and_channels_one_by_one(rng):
    gray = smooth_image(rng, (15, 13))
    a = pixel_features(gray, sigmas=(1, 2))
    np.testing.assert_array_equal(a, pixel_features(gray[:, :, None], sigmas=(1, 2)))
    # Four channels: each block of features is the gray features of that channel.
    stack = np.stack([gray, 255 - gray, gray // 2, gray], axis=-1)
    f, names = pixel_features(stack, sigmas=(1, 2), position=False, return_names=True)
    per = pixel_features(gray, sigmas=(1, 2), position=False).shape[-1]
    for c in range(4):
        block = f[..., c * per:(c + 1) * per]
        np.testing.assert_allclose(
            block, pixel_features(stack[..., c], sigmas=(1, 2), position=False), atol=1e-6
        )
        assert all(n.startswith(f"ch{c}_") for n in names[c * per:(c + 1) * per])


# --------------------------------------------------------------------------- scaling
@pytest.mark.parametrize("shape", [(12, 17), (12, 17, 3), (12, 17, 4)])
def test_uint8_and_unit_floats_agree(rng, shape):
    image = rng.integers(0, 256, shape).astype(np.uint8)
    ref = pixel_features(image, sigmas=(1, 3), superpixels=5)
    for as_float in (image / 255.0, (image / 255.0).astype(np.float32)):
        np.testing.assert_allclose(pixel_features(as_float, sigmas=(1, 3), superpixels=5),
                                   ref, atol=2e-5)
    # Other integer types count in 8-bit units; uint16 in 16-bit units.
    np.testing.assert_allclose(pixel_features(image.astype(np.int64), sigmas=(1, 3),
                                              superpixels=5), ref, atol=2e-5)
    as16 = image.astype(np.uint16) * 257
    np.testing.assert_allclose(pixel_features(as16, sigmas=(1, 3), superpixels=5), ref,
                               atol=2e-5)


# --------------------------------------------------------------------------- exact values
@pytest.mark.parametrize("shape", [(1, 1), (4, 6, 3), (7, 2), (13, 5, 4)])
def test_position_is_exact(shape):
    image = np.zeros(shape, np.uint8)
    f, names = pixel_features(image, sigmas=1, return_names=True)
    h, w = shape[:2]
    row = f[..., names.index("row")]
    col = f[..., names.index("col")]
    expected_row = ((np.arange(h) + 0.5) / h).astype(np.float32)
    expected_col = ((np.arange(w) + 0.5) / w).astype(np.float32)
    np.testing.assert_array_equal(row, np.broadcast_to(expected_row[:, None], (h, w)))
    np.testing.assert_array_equal(col, np.broadcast_to(expected_col[None, :], (h, w)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (8, 8), (5, 7, 3), (6, 4, 5)])
@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_image_has_finite_flat_features(shape, value):
    image = np.full(shape, value, np.uint8)
    f, names = pixel_features(image, superpixels=3, return_names=True)
    assert np.isfinite(f).all()
    for i, name in enumerate(names):
        if name.startswith(("edges", "hessian", "superpixel_std")) or "_edges" in name \
                or "_hessian" in name:
            np.testing.assert_allclose(f[..., i], 0, atol=1e-5, err_msg=name)
        elif name not in ("row", "col", "superpixel_size"):
            # Intensity and colour are the constant itself, everywhere.
            np.testing.assert_allclose(f[..., i], f[0, 0, i], atol=1e-5, err_msg=name)
    if len(shape) == 2:
        np.testing.assert_allclose(f[..., names.index("intensity_s1")], value / 255,
                                   rtol=1e-5)


def test_multiscale_families_match_numpy_oracles(rng):
    image = smooth_image(rng, (30, 40))
    sigmas = (1, 2.5)
    f, names = pixel_features(image, sigmas=sigmas, return_names=True)
    unit = image / 255.0
    for s in sigmas:
        smooth = ndi.gaussian_filter(unit, s, mode="reflect")  # float64 reference
        np.testing.assert_allclose(f[..., names.index(f"intensity_s{s:g}")], smooth,
                                   atol=1e-6)
        np.testing.assert_allclose(f[1:-1, 1:-1, names.index(f"edges_s{s:g}")],
                                   interior_sobel_magnitude(smooth), atol=1e-6)
        hi, lo = interior_hessian_eigs(smooth)
        np.testing.assert_allclose(f[1:-1, 1:-1, names.index(f"hessian_max_s{s:g}")], hi,
                                   atol=1e-6)
        np.testing.assert_allclose(f[1:-1, 1:-1, names.index(f"hessian_min_s{s:g}")], lo,
                                   atol=1e-6)
    # Borders mirror the image: the features of a reflected image are reflected.
    flipped = pixel_features(image[::-1], sigmas=sigmas, position=False)
    np.testing.assert_allclose(flipped[::-1], f[..., :-2], atol=1e-6)


def test_colour_features_are_smoothed_lab(rng):
    image = smooth_image(rng, (20, 24, 3))
    f, names = pixel_features(image, sigmas=(1, 2, 4), return_names=True)
    lab = rgb2lab(image / 255.0)
    np.testing.assert_allclose(f[..., names.index("intensity_s2")],
                               ndi.gaussian_filter(lab[..., 0] / 100, 2), atol=1e-5)
    for s in (1, 2):
        for i, ch in ((1, "a"), (2, "b")):
            np.testing.assert_allclose(f[..., names.index(f"lab_{ch}_s{s}")],
                                       ndi.gaussian_filter(lab[..., i] / 100, s), atol=1e-5)
    g, gnames = pixel_features(image, sigmas=(1, 2, 4), color="rgb", return_names=True)
    np.testing.assert_allclose(g[..., gnames.index("rgb_g_s2")],
                               ndi.gaussian_filter(image[..., 1] / 255.0, 2), atol=1e-6)


def test_superpixel_statistics_on_flat_regions():
    image = np.zeros((24, 32), np.uint8)
    image[:, 16:] = 200
    f, names = pixel_features(image, sigmas=1, superpixels=4, return_names=True)
    mean = f[..., names.index("superpixel_mean_intensity")]
    np.testing.assert_allclose(mean, image / 255.0, atol=1e-6)
    np.testing.assert_allclose(f[..., names.index("superpixel_std_intensity")], 0, atol=1e-6)
    size = f[..., names.index("superpixel_size")] * image.size
    np.testing.assert_allclose(size, np.round(size), atol=1e-3)
    # Each superpixel contributes count x (1 / count) = 1: the sum counts superpixels.
    n_superpixels = np.sum(1.0 / np.round(size))
    assert abs(n_superpixels - round(n_superpixels)) < 1e-6 and round(n_superpixels) >= 2


@given(
    h=st.integers(1, 12), w=st.integers(1, 12), c=st.sampled_from([None, 1, 2, 3, 4]),
    seed=st.integers(0, 2**16),
)
def test_any_small_image_gives_finite_features(h, w, c, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    image = rng.uniform(0, 1, shape)
    f, names = pixel_features(image, sigmas=(0.5, 3), superpixels=2, return_names=True)
    assert f.shape == (h, w, len(names)) and np.isfinite(f).all()


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("image", "kwargs", "exc", "match"),
    [
        (np.zeros((0, 5), np.uint8), {}, ValueError, "image is empty"),
        (np.full((4, 4), np.nan), {}, ValueError, "NaN"),
        (np.zeros((4, 4, 3, 2)), {}, ValueError, "image must be"),
        (np.zeros((4, 4), complex), {}, TypeError, "image must hold"),
        (None, {}, TypeError, "image"),
        (np.zeros((4, 4)), {"sigmas": (1, 0)}, ValueError, "sigmas must be positive"),
        (np.zeros((4, 4)), {"sigmas": -2.0}, ValueError, "sigmas must be positive"),
        (np.zeros((4, 4)), {"sigmas": (1, np.inf)}, ValueError, "sigmas"),
        (np.zeros((4, 4)), {"sigmas": ()}, ValueError, "sigmas is empty"),
        (np.zeros((4, 4)), {"sigmas": (1, "2")}, TypeError, "sigmas must hold numbers"),
        (np.zeros((4, 4)), {"sigmas": "12"}, TypeError, "'sigmas'"),
        (np.zeros((4, 4)), {"color": "hsv"}, ValueError, "'color'"),
        (np.zeros((4, 4)), {"edges": 1}, TypeError, "'edges'"),
        (np.zeros((4, 4)), {"superpixels": 0}, ValueError, "'superpixels'"),
        (np.zeros((4, 4)), {"superpixels": 2.5}, ValueError, "'superpixels'"),
        (np.zeros((4, 4)), {"intensity": False, "edges": False, "texture": False,
                            "position": False}, ValueError, "nothing to compute"),
    ],
)
def test_bad_input_is_named(image, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pixel_features(image, **kwargs)


def test_colour_alone_is_enough_for_rgb_images(rng):
    image = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    f = pixel_features(image, intensity=False, edges=False, texture=False, position=False,
                       sigmas=(1, 2))
    assert f.shape == (5, 6, 4)


def test_a_sigma_far_beyond_the_image_gives_its_mean_not_a_memory_error():
    from hybridseg.classical import pixel_features

    rng = np.random.default_rng(0)
    image = rng.random((12, 16)).astype(np.float32)
    huge = pixel_features(image, sigmas=(1e9,), edges=False, texture=False,
                          position=False)
    np.testing.assert_allclose(huge[..., 0], image.mean(), atol=1e-3)
