import numpy as np
import pytest
import scipy.sparse

from hybridseg.utils import (
    check_ignore_index,
    check_image,
    check_images,
    check_kind,
    check_label_map,
    check_label_maps,
    check_matching_lengths,
    check_n_classes,
    check_scores,
)


def test_check_image_accepts_contract_forms():
    assert check_image(np.zeros((3, 4), np.uint8)).shape == (3, 4)
    assert check_image(np.zeros((3, 4, 3), np.float64)).dtype == np.float64
    assert check_image(np.zeros((3, 4), bool)).dtype == np.uint8
    assert check_image([[1, 2], [3, 4]]).shape == (2, 2)
    a = np.zeros((3, 4, 3), np.uint16)
    assert check_image(a) is a  # no copy


@pytest.mark.parametrize(("bad", "exc", "msg"), [
    (np.zeros((3,)), ValueError, r"\(H, W\) gray or \(H, W, C\)"),
    (np.zeros((2, 3, 4, 5)), ValueError, r"shape \(2, 3, 4, 5\)"),
    (np.zeros((0, 4)), ValueError, "empty"),
    (np.array([[np.nan, 1.0]]), ValueError, "NaN"),
    (np.array([[np.inf, 1.0]]), ValueError, "NaN or infinite"),
    (np.zeros((2, 2), complex), TypeError, "complex"),
    (np.array([["a", "b"]]), TypeError, "integers or floats"),
    (None, TypeError, "None"),
])
def test_check_image_rejects(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        check_image(bad, name="img")


def test_check_images_forms():
    assert len(check_images([np.zeros((2, 3)), np.zeros((4, 5, 3))])) == 2
    assert len(check_images(np.zeros((5, 2, 3)))) == 5  # (N, H, W)
    assert check_images(np.zeros((5, 2, 3, 3)))[0].shape == (2, 3, 3)  # (N, H, W, C)
    assert len(check_images(iter([np.zeros((2, 2))]))) == 1
    assert len(check_images((np.zeros((2, 2)),))) == 1


@pytest.mark.parametrize(("bad", "exc", "msg"), [
    ([], ValueError, "X is empty"),
    (np.zeros((4, 4)), ValueError, "wrap it in a list"),
    (np.zeros(4), ValueError, "got an array of shape"),
    ("image.png", TypeError, "str"),
    (None, TypeError, "NoneType"),
    ({"a": 1}, TypeError, "dict"),
    (5, TypeError, "int"),
    (scipy.sparse.csr_matrix(np.eye(3)), TypeError, "sparse"),
    ([np.zeros((2, 2)), np.zeros(3)], ValueError, r"X\[1\]"),
])
def test_check_images_rejects(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        check_images(bad)


def test_check_label_map():
    assert check_label_map(np.array([[0, 1], [255, 2]]), n_classes=3).shape == (2, 2)
    assert check_label_map(np.array([[0.0, 2.0]]), n_classes=3).dtype == np.int64
    assert check_label_map(np.array([[True, False]])).dtype == np.uint8
    with pytest.raises(ValueError, match=r"y holds labels 3, 7; labels must be in \[0, 3\)"):
        check_label_map(np.array([[0, 3], [7, 1]]), n_classes=3)
    with pytest.raises(ValueError, match="or 255"):
        check_label_map(np.array([[-1]]), n_classes=3)
    with pytest.raises(ValueError, match="non-negative"):
        check_label_map(np.array([[-1]]))
    with pytest.raises(ValueError, match="labels 255"):
        check_label_map(np.array([[255]]), n_classes=3, ignore_index=None)
    with pytest.raises(TypeError, match="whole numbers"):
        check_label_map(np.array([[0.5]]))
    with pytest.raises(TypeError, match="integer labels"):
        check_label_map(np.array([["a"]]))
    with pytest.raises(ValueError, match=r"shape \(2, 2\) but its image is \(2, 3\)"):
        check_label_map(np.zeros((2, 2), int), shape=(2, 3))
    with pytest.raises(ValueError, match=r"\(H, W\) label map"):
        check_label_map(np.zeros((2, 2, 1), int))
    with pytest.raises(ValueError, match="empty"):
        check_label_map(np.zeros((0, 2), int))


def test_check_label_maps():
    maps = check_label_maps([np.zeros((2, 3), int), np.ones((4, 4), np.uint8)],
                            shapes=[(2, 3), (4, 4)], n_classes=2)
    assert len(maps) == 2
    assert len(check_label_maps(np.zeros((3, 2, 2), int))) == 3
    with pytest.raises(ValueError, match="has 1 label maps for 2 images"):
        check_label_maps([np.zeros((2, 3), int)], shapes=[(2, 3), (4, 4)])
    with pytest.raises(ValueError, match=r"y\[1\] has shape"):
        check_label_maps([np.zeros((2, 3), int)] * 2, shapes=[(2, 3), (4, 4)])
    with pytest.raises(ValueError, match="empty"):
        check_label_maps([])
    with pytest.raises(ValueError, match="wrap it in a list"):
        check_label_maps(np.zeros((2, 2), int))
    with pytest.raises(TypeError):
        check_label_maps(None)


def test_check_scores():
    p = np.full((2, 3, 4), 0.25)
    out = check_scores(p, spatial_shape=(2, 3), n_classes=4)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert check_scores(np.asfortranarray(p)).flags.c_contiguous
    logits = np.random.default_rng(0).normal(size=(2, 3, 4)) * 20
    assert check_scores(logits, kind="logits").shape == (2, 3, 4)
    with pytest.raises(ValueError, match="kind='logits'"):
        check_scores(logits)
    with pytest.raises(ValueError, match="kind='logits'"):
        check_scores(p * 1.01)
    with pytest.raises(ValueError, match="NaN"):
        check_scores(np.full((2, 2, 2), np.nan), kind="logits")
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        check_scores(np.full((4, 2, 3), 0.25), spatial_shape=(2, 3))
    with pytest.raises(ValueError, match="class axis last"):
        check_scores(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="has 4 classes, expected 5"):
        check_scores(p, n_classes=5)
    with pytest.raises(TypeError, match="floats"):
        check_scores(np.full((2, 2, 2), "a"))
    with pytest.raises(ValueError, match="kind must be"):
        check_scores(p, kind="softmax")
    with pytest.raises(ValueError, match="empty"):
        check_scores(np.zeros((0, 2, 2)))
    # float16 probabilities within the tolerance pass.
    assert check_scores(p.astype(np.float16)).dtype == np.float32


def test_small_checks():
    assert check_kind("logits") == "logits"
    assert check_n_classes(np.int64(3)) == 3
    assert check_n_classes(None, allow_none=True) is None
    with pytest.raises(TypeError):
        check_n_classes(True)
    with pytest.raises(TypeError):
        check_n_classes(2.0)
    with pytest.raises(ValueError):
        check_n_classes(0)
    assert check_ignore_index(None) is None and check_ignore_index(np.uint8(255)) == 255
    with pytest.raises(TypeError):
        check_ignore_index("255")
    assert check_matching_lengths(a=[1, 2], b=(3, 4)) == 2
    with pytest.raises(ValueError, match="a has 2, b has 1"):
        check_matching_lengths(a=[1, 2], b=[3])


def test_check_image_and_scores_images_and_volumes():
    from hybridseg.utils import check_image_and_scores

    img, s = check_image_and_scores(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 2)),
                                    kind="logits")
    assert img.shape == (4, 5, 3) and s.shape == (4, 5, 2) and s.dtype == np.float32
    vol, sv = check_image_and_scores(np.zeros((2, 4, 5)), np.full((2, 4, 5, 2), 0.5),
                                     kind="proba")
    assert vol.shape == (2, 4, 5) and sv.shape == (2, 4, 5, 2)
    with pytest.raises(ValueError, match=r"image must be \(D, H, W\)"):
        check_image_and_scores(np.zeros((4, 5)), np.zeros((2, 4, 5, 2)), kind="logits")
    with pytest.raises(ValueError, match="volume is"):
        check_image_and_scores(np.zeros((2, 4, 6)), np.zeros((2, 4, 5, 2)), kind="logits")
    bad = np.zeros((2, 4, 5, 2))
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_image_and_scores(np.zeros((2, 4, 5)), bad, kind="logits")
    with pytest.raises(ValueError, match="but its image is"):
        check_image_and_scores(np.zeros((4, 6)), np.zeros((4, 5, 2)), kind="logits")


def test_big_endian_inputs_come_back_in_native_byte_order():
    from hybridseg.utils import check_image, check_label_map

    im = np.arange(12, dtype=">u2").reshape(3, 4)
    lab = np.arange(12, dtype=">i4").reshape(3, 4) % 3
    for out, ref in ((check_image(im), im), (check_label_map(lab), lab)):
        assert out.dtype.isnative
        np.testing.assert_array_equal(out, ref)


def test_bool_images_are_black_and_white_and_huge_floats_are_refused():
    from hybridseg.utils import check_image

    mask = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(check_image(mask), [[255, 0], [0, 255]])
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_image(np.full((4, 4), 1e300))
