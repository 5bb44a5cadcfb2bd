"""open_raster: TIFF, OME-TIFF and zarr read by windows, channels last; clear errors."""

import numpy as np
import pytest

from hybridseg.datasets import Raster, open_raster
from hybridseg.datasets._raster import raster_shape

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (300, 420, 3), dtype=np.uint8)


WINDOW = (slice(37, 201), slice(150, 419))


@pytest.mark.parametrize("how", ["tiled", "stripped", "bigtiff", "ome_planar", "gray"])
def test_tiff_windows_equal_the_image(tmp_path, image, how):
    path = tmp_path / "a.tif"
    want = image
    if how == "tiled":
        tifffile.imwrite(path, image, tile=(64, 64), compression="zlib")
    elif how == "stripped":
        tifffile.imwrite(path, image, rowsperstrip=7)
    elif how == "bigtiff":
        tifffile.imwrite(path, image, tile=(32, 64), bigtiff=True)
    elif how == "ome_planar":
        path = tmp_path / "a.ome.tif"
        tifffile.imwrite(path, np.moveaxis(image, -1, 0), ome=True,
                         metadata={"axes": "CYX"}, tile=(64, 64))
    else:
        want = image[..., 0]
        tifffile.imwrite(path, want, tile=(64, 64))
    with open_raster(path) as raster:
        assert isinstance(raster, Raster) and raster.shape == want.shape
        assert raster.dtype == np.uint8 and len(raster) == 300
        np.testing.assert_array_equal(raster[WINDOW], want[WINDOW])
        np.testing.assert_array_equal(np.asarray(raster), want)
    assert raster_shape(path) == want.shape


def test_zarr_array_and_ome_zarr_group(tmp_path, image):
    z = zarr.open_array(tmp_path / "a.zarr", mode="w", shape=image.shape,
                        chunks=(64, 64, 3), dtype="u1")
    z[:] = image
    with open_raster(tmp_path / "a.zarr") as raster:
        np.testing.assert_array_equal(raster[WINDOW], image[WINDOW])
    g = zarr.open_group(tmp_path / "b.zarr", mode="w")
    g.attrs["multiscales"] = [{"axes": [{"name": "c"}, {"name": "y"}, {"name": "x"}],
                               "datasets": [{"path": "0"}, {"path": "1"}]}]
    g.create_array("0", shape=(3, 300, 420), chunks=(3, 64, 64), dtype="u1")[:] = (
        np.moveaxis(image, -1, 0))
    g.create_array("1", shape=(3, 150, 210), chunks=(3, 64, 64), dtype="u1")
    with open_raster(tmp_path / "b.zarr") as raster:
        assert raster.shape == image.shape
        np.testing.assert_array_equal(raster[WINDOW], image[WINDOW])


def test_other_images_are_read_whole(tmp_path, image):
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "a.png")
    got = open_raster(tmp_path / "a.png")
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, image)
    assert raster_shape(tmp_path / "a.png") == image.shape


def test_bad_input(tmp_path, image):
    (tmp_path / "text.tif").write_text("not a tiff")
    with pytest.raises(ValueError, match="is not a TIFF that tifffile can read"):
        open_raster(tmp_path / "text.tif")
    with pytest.raises(FileNotFoundError):
        open_raster(tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((6, 30, 40), np.uint8),
                     photometric="minisblack")
    with pytest.raises(ValueError, match="is a stack"):
        open_raster(tmp_path / "stack.tif")
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(ValueError, match="cannot be read as an image"):
        raster_shape(tmp_path / "text.png")
    tifffile.imwrite(tmp_path / "a.tif", image)
    with open_raster(tmp_path / "a.tif") as raster, pytest.raises(IndexError,
                                                                   match="reads windows"):
        raster[3]


def test_palette_tiffs_give_their_colours(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    index = rng.integers(0, 4, (80, 90), dtype=np.uint8)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 99, 199]], np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = colors.T.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "p.tif", index, photometric="palette", colormap=cmap,
                     tile=(32, 32))
    with open_raster(tmp_path / "p.tif") as raster:
        assert raster.shape == (80, 90, 3) and raster.dtype == np.uint8
        np.testing.assert_array_equal(raster[10:50, 5:77], colors[index][10:50, 5:77])
        np.testing.assert_array_equal(raster[:, :, 1:2], colors[index][:, :, 1:2])
    from hybridseg.datasets._raster import read_raster

    np.testing.assert_array_equal(read_raster(tmp_path / "p.tif"), colors[index])
    Image.fromarray(index, mode="P").save(tmp_path / "pil.tif")  # Pillow's palette TIFF
    assert read_raster(tmp_path / "pil.tif").shape == (80, 90, 3)
