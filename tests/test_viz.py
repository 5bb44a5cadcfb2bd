import os

import numpy as np
import pytest
from PIL import Image

from hybridseg.viz import colorize, figure_grid, save_png, tile


def test_colorize_classes_and_void():
    colors = np.array([[255, 0, 0], [0, 255, 0]], np.uint8)
    rgb = colorize(np.array([[0, 1], [255, 1]]), colors, void_color=(1, 2, 3))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(rgb[1, 0], [1, 2, 3])


def test_tile_and_grid_sizes():
    label_tile = tile(np.zeros((9, 7, 3), np.uint8), (20, 10), labels=True)
    gray_tile = tile(np.zeros((9, 7), np.uint8), (20, 10))
    assert label_tile.size == gray_tile.size == (20, 10) and gray_tile.mode == "RGB"
    fig = figure_grid([[(label_tile, "a"), (gray_tile, "b")]] * 3, ["x", "y"])
    assert fig.size[0] == 2 * 20 + 3 * 8
    assert fig.size[1] > 3 * 10


def test_save_png_replaces_a_link_without_following_it(tmp_path):
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"keep")
    link = tmp_path / "fig.png"
    os.symlink(elsewhere, link)
    save_png(Image.new("RGB", (3, 2)), link)
    assert elsewhere.read_bytes() == b"keep"
    assert not link.is_symlink()
    with Image.open(link) as im:
        assert im.size == (3, 2)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_save_png_leaves_nothing_on_failure(tmp_path):
    class Broken:
        def save(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_png(Broken(), tmp_path / "fig.png")
    assert list(tmp_path.iterdir()) == []


def test_colorize_refuses_negative_or_float_labels():
    with pytest.raises(ValueError, match="non-negative integer"):
        colorize(np.array([[-1, 0]]), [[0, 0, 0]])
    with pytest.raises(ValueError, match="non-negative integer"):
        colorize(np.array([[0.5]]), [[0, 0, 0]])


def test_comparison_figure_draws_a_legend_of_the_classes():
    import numpy as np

    from hybridseg.viz import comparison_figure, legend

    colors = np.array([(200, 10, 10), (10, 200, 10), (10, 10, 200)], np.uint8)
    truth = np.zeros((6, 9), np.uint8)
    truth[:, 3:6], truth[:, 6:] = 1, 2
    plain = comparison_figure([truth], [truth], {"m": [truth]}, colors=colors)
    fig = comparison_figure([truth], [truth], {"m": [truth]}, colors=colors,
                            class_names=["red", "green", "blue"])
    assert fig.width == plain.width and fig.height > plain.height
    strip = np.asarray(fig)[plain.height:]
    for c in colors:  # every class's swatch is drawn under the grid
        assert (strip == c).all(-1).any()
    narrow = legend(colors, ["a long class name"] * 3, 120)
    wide = legend(colors, ["a long class name"] * 3, 2000)
    assert narrow.height > wide.height and narrow.width == 120  # wrapped to the width


def test_overlay_blends_the_colours_on_the_image_and_leaves_void_alone():
    from hybridseg.viz import comparison_figure, overlay

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    label = np.zeros((6, 8), np.uint8)
    label[:, 4:] = 1
    label[0, 0] = 255
    colors = np.array([(255, 0, 0), (0, 0, 255)], np.uint8)
    out = overlay(image, label, colors, alpha=0.25)
    want = np.rint(0.75 * image + 0.25 * colors[np.minimum(label, 1)]).astype(np.uint8)
    want[0, 0] = image[0, 0]  # void shows the image
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(overlay(image, label, colors, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, label, colors, alpha=1.0)[1:],
                                  colorize(label, colors)[1:])
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, label, colors, alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        overlay(image, label[:3], colors)
    flat = comparison_figure([image], [label], {"m": [label]}, colors=colors)
    blended = comparison_figure([image], [label], {"m": [label]}, colors=colors,
                                style="overlay")
    assert flat.size == blended.size
    assert not np.array_equal(np.asarray(flat), np.asarray(blended))
    with pytest.raises(ValueError, match="style"):
        comparison_figure([image], [label], {"m": [label]}, colors=colors, style="3d")


def test_with_legend_puts_the_class_swatches_under_any_figure():
    from hybridseg.viz import with_legend

    colors = np.array([(200, 10, 10), (10, 200, 10)], np.uint8)
    grid = figure_grid([[(tile(np.zeros((4, 6), np.uint8)), "x")]], ["a"])
    out = with_legend(grid, colors, ["red", "green"])
    assert out.width == grid.width and out.height > grid.height
    strip = np.asarray(out)[grid.height:]
    for c in colors:
        assert (strip == c).all(-1).any()
