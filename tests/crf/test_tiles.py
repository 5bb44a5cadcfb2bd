"""refine_tiles: the tiled refine against the whole-image one, arrays read by slices,
out arrays, joblib, bad input."""

import numpy as np
import pytest

from hybridseg.crf import DenseCRF, GridCRF, refine_tiles
from hybridseg.crf._tiles import _tiles, default_overlap
from hybridseg.datasets import load_sample, make_noisy_scores


class SliceOnly:
    """Reads by slices only (as a zarr or a disk array): no __array__."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim

    def __getitem__(self, key):
        return self.a[key].copy()


@pytest.fixture(scope="module")
def problem():
    data = load_sample("camvid")
    image, label = data.images[0], np.where(data.labels[0] == 255, 0, data.labels[0])
    (logits,) = make_noisy_scores([label], 11, random_state=0)
    return image, logits.astype(np.float32)


def test_tiles_cover_the_image_once():
    tiles = _tiles((10, 25), 8, 3)
    cover = np.zeros((10, 25), int)
    for core, halo in tiles:
        cover[core] += 1
        for c, h in zip(core, halo):
            assert h.start <= c.start and c.stop <= h.stop and c.start - h.start <= 3
    assert (cover == 1).all() and len(tiles) == 2 * 4


def test_tiled_dense_crf_agrees_with_the_whole_image(problem):
    image, logits = problem
    crf = DenseCRF(n_iter=3, bilateral_sxy=30)  # default overlap 90
    whole = crf.refine(image, logits, kind="logits").argmax(-1)
    tiled = refine_tiles(crf, image, logits, kind="logits", tile_size=160)
    assert tiled.dtype == np.uint8 and tiled.shape == whole.shape
    assert (tiled == whole).mean() > 0.999  # the tiles are placed on the whole lattice
    # one tile holding everything is the whole-image refine
    np.testing.assert_array_equal(
        refine_tiles(crf, image, logits, kind="logits", tile_size=512, overlap=0), whole)


def test_slices_in_slices_out_and_joblib(problem, tmp_path):
    image, logits = problem
    crf = GridCRF(weight=2.0)
    ref = refine_tiles(crf, image, logits, kind="logits", tile_size=128)
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint16,
                                    shape=image.shape[:2])
    got = refine_tiles(crf, SliceOnly(image), SliceOnly(logits.astype(np.float16)),
                       kind="logits", tile_size=128, out=out, n_jobs=2)
    assert got is out
    np.testing.assert_array_equal(np.asarray(out), ref)


def test_default_overlap_follows_the_kernels():
    assert default_overlap(DenseCRF()) == 240
    assert default_overlap(DenseCRF(bilateral_sxy=10, gaussian_sxy=3)) == 30
    assert default_overlap(GridCRF()) == 32


def test_bad_input(problem):
    image, logits = problem
    crf = DenseCRF(n_iter=1)
    with pytest.raises(ValueError, match=r"tile_size \(64\) must be larger than overlap"):
        refine_tiles(crf, image, logits, kind="logits", tile_size=64, overlap=64)
    with pytest.raises(ValueError, match="image has shape"):
        refine_tiles(crf, image[:-1], logits, kind="logits")
    with pytest.raises(ValueError, match="out has shape"):
        refine_tiles(crf, image, logits, kind="logits", out=np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="integer array"):
        refine_tiles(crf, image, logits, kind="logits",
                     out=np.zeros(image.shape[:2], np.float32))
    with pytest.raises(ValueError, match="tile_size must be an int"):
        refine_tiles(crf, image, logits, kind="logits", tile_size=2.5)
    with pytest.raises(ValueError, match="scores must be"):
        refine_tiles(crf, image, logits[..., 0], kind="logits")


def test_a_tile_placed_at_its_origin_is_refined_on_the_whole_image_lattice(problem):
    image, logits = problem
    crf = DenseCRF(n_iter=2)
    whole = crf.refine(image, logits, kind="logits")
    tile = crf.refine(image[40:, 60:], logits[40:, 60:], kind="logits", origin=(40, 60))
    moved = crf.refine(image[40:, 60:], logits[40:, 60:], kind="logits")
    core = (slice(200, 300), slice(250, 400))  # far from the cut
    inner = (slice(160, 260), slice(190, 340))
    assert np.abs(tile[inner] - whole[core]).max() < np.abs(moved[inner] - whole[core]).max()
    with pytest.raises(ValueError, match="origin must be 2 ints"):
        crf.refine(image, logits, kind="logits", origin=(1,))
