import numpy as np
import pytest
import skimage.data
from _oracles import qtdecomp_oracle, same_partition
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hybridseg.classical import quadtree_split


@pytest.mark.parametrize("threshold, min_size, max_size", [
    (20, 1, None), (40, 4, None), (10, 8, None), (0, 1, None), (255, 1, None),
    (30, 3, 64), (50, 1, 16), (5, 2, 2),
])
def test_equals_recursive_qtdecomp_on_camera(threshold, min_size, max_size):
    cam = skimage.data.camera()
    ours = quadtree_split(cam, threshold=threshold, min_size=min_size, max_size=max_size)
    ref = qtdecomp_oracle(cam, threshold, min_size, max_size)
    assert ours.dtype == np.int32
    # Not only the same partition: the same ids, in the recursion's order.
    np.testing.assert_array_equal(ours, ref)


@given(
    img=arrays(np.uint8, st.tuples(st.integers(1, 19), st.integers(1, 19)),
               elements=st.integers(0, 255)),
    threshold=st.integers(0, 255),
    min_size=st.integers(1, 5),
)
def test_equals_oracle_on_any_size(img, threshold, min_size):
    np.testing.assert_array_equal(
        quadtree_split(img, threshold=threshold, min_size=min_size),
        qtdecomp_oracle(img, threshold, min_size),
    )


def test_blocks_are_homogeneous_or_minimal_and_match_return_blocks(rng):
    img = (rng.random((37, 50)) * 100).astype(np.float32)
    ids, blocks = quadtree_split(img, threshold=30.0, min_size=2, return_blocks=True)
    assert blocks.shape == (ids.max() + 1, 4)
    for b, (r, c, h, w) in enumerate(blocks):
        patch = ids[r:r + h, c:c + w]
        assert (patch == b).all()
        assert (ids == b).sum() == h * w
        if max(h, w) > 2:  # larger than min_size: must be homogeneous
            vals = img[r:r + h, c:c + w]
            assert vals.max() - vals.min() <= 30.0


def test_edges_of_non_power_of_two_images_are_clipped_rectangles():
    img = np.zeros((3, 5), np.uint8)
    ids, blocks = quadtree_split(img, threshold=0, return_blocks=True)
    # The 8x8 root block clipped to 3x5 is homogeneous: one block covering everything.
    np.testing.assert_array_equal(ids, 0)
    np.testing.assert_array_equal(blocks, [[0, 0, 3, 5]])
    img[2, 4] = 9
    ids, blocks = quadtree_split(img, threshold=0, return_blocks=True)
    assert (blocks[:, 2] * blocks[:, 3]).sum() == 15
    assert ids[2, 4] != ids[0, 0]


def test_colour_and_dtypes():
    cam = skimage.data.camera()
    rgb = np.repeat(cam[:, :, None], 3, axis=2)
    # Gray replicated into RGB has the same luminance (the weights sum to one).
    same = quadtree_split(rgb, threshold=20.5)
    assert same_partition(same, quadtree_split(cam, threshold=20.5))
    as_float = quadtree_split(cam / 255.0, threshold=20.5 / 255)
    assert same_partition(as_float, quadtree_split(cam, threshold=20.5))
    assert same_partition(quadtree_split(cam.astype(np.int64), threshold=20),
                          quadtree_split(cam, threshold=20))
    rgba = np.dstack([rgb, np.full(cam.shape, 7, np.uint8)])
    assert same_partition(quadtree_split(rgba, threshold=20.5), same)


def test_single_pixel_and_constant_images():
    np.testing.assert_array_equal(quadtree_split(np.array([[3]]), threshold=0), [[0]])
    np.testing.assert_array_equal(quadtree_split(np.full((9, 7), 4.0), threshold=0), 0)
    np.testing.assert_array_equal(quadtree_split(np.zeros((1, 9)), threshold=0), 0)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(threshold=-1), ValueError, "threshold must be a finite number >= 0"),
    (dict(threshold=np.nan), ValueError, "threshold must be a finite number"),
    (dict(threshold=256), ValueError, r"out of range for a uint8 image.*\[0, 255\]"),
    (dict(threshold="10"), TypeError, "threshold must be a real number"),
    (dict(threshold=10, min_size=0), ValueError, "min_size must be >= 1"),
    (dict(threshold=10, min_size=2.5), TypeError, "min_size must be a positive integer"),
    (dict(threshold=10, min_size=8, max_size=4), ValueError, "max_size"),
])
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        quadtree_split(np.zeros((8, 8), np.uint8), **kwargs)


@pytest.mark.parametrize("image, exc, match", [
    (np.zeros((0, 5)), ValueError, "image is empty"),
    (np.array([[np.nan, 1.0]]), ValueError, "NaN"),
    (np.zeros(5), ValueError, r"\(H, W\) gray or \(H, W, C\)"),
    (np.array([["a"]]), TypeError, "integers or floats"),
])
def test_bad_images(image, exc, match):
    with pytest.raises(exc, match=match):
        quadtree_split(image, threshold=1)
