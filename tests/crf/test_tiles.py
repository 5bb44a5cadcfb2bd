"""refine_tiles: the tiled refine against the whole-image one, arrays read by slices,
out arrays, joblib, bad input."""

import numpy as np
import pytest

from hybridseg.crf import (
    DenseCRF,
    GridCRF,
    default_overlap,
    refine_tile,
    refine_tiles,
    tile_grid,
)
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
    tiles = tile_grid((10, 25), 8, 3)
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


def test_marginals_into_a_second_out(problem):
    image, logits = problem
    crf = DenseCRF(n_iter=2, bilateral_sxy=20)
    proba = np.zeros(logits.shape, np.float16)
    labels = refine_tiles(crf, image, logits, kind="logits", tile_size=128, proba_out=proba)
    assert np.allclose(proba.astype(np.float32).sum(-1), 1, atol=5e-3)
    # the labels are the argmax of the kept marginals (up to float16 ties)
    assert (proba.argmax(-1) == labels).mean() > 0.999
    with pytest.raises(ValueError, match="proba_out must be a float array of shape"):
        refine_tiles(crf, image, logits, kind="logits", proba_out=np.zeros(logits.shape[:2]))


def test_volumes_are_cut_in_three_dimensions():
    rng = np.random.default_rng(0)
    truth = np.zeros((12, 40, 40), int)
    truth[:, 10:30, 5:25] = 1
    truth[4:, 20:, 20:] = 2
    volume = (truth * 80 + rng.normal(0, 10, truth.shape)).clip(0, 255)
    logits = (2.0 * np.eye(3)[truth] + rng.normal(0, 1.5, (*truth.shape, 3))).astype(
        np.float32)
    crf = DenseCRF(n_iter=3, bilateral_sxy=4, gaussian_sxy=1, bilateral_srgb=20)
    assert len(tile_grid(truth.shape, 16, 12)) == 1 * 3 * 3
    whole = crf.refine(volume, logits, kind="logits").argmax(-1)
    tiled = refine_tiles(crf, volume, logits, kind="logits", tile_size=16, overlap=12)
    assert tiled.shape == truth.shape
    assert (tiled == whole).mean() > 0.995
    assert (tiled == truth).mean() > (logits.argmax(-1) == truth).mean()


def test_memmaps_in_and_out_keep_every_label(problem, tmp_path):
    image, logits = problem
    path = tmp_path / "scores.f16"
    scores = np.memmap(path, np.float16, "w+", shape=logits.shape)
    scores[:] = logits
    scores.flush()
    scores = np.memmap(path, np.float16, "r", shape=logits.shape)
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint8,
                                    shape=logits.shape[:2])
    crf = GridCRF(weight=2.0)
    refine_tiles(crf, image, scores, kind="logits", tile_size=128, out=out)
    del out  # the labels reached the file, not only this process's pages
    np.testing.assert_array_equal(
        np.load(tmp_path / "labels.npy"),
        refine_tiles(crf, image, logits, kind="logits", tile_size=128))


def test_a_tile_loop_of_ones_own_gives_refine_tiles_labels(problem):
    image, logits = problem
    crf = DenseCRF(n_iter=2, bilateral_sxy=20)
    want = refine_tiles(crf, image, logits, kind="logits", tile_size=128, overlap=60)
    got = np.zeros(image.shape[:2], np.uint8)
    for core, halo in tile_grid(image.shape[:2], 128, 60):
        labels, proba = refine_tile(crf, image[halo], logits[halo], core, halo,
                                    kind="logits", return_proba=True)
        assert proba.shape == (*labels.shape, 11) and proba.dtype == np.float32
        got[core] = labels
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="tile_size must be >= 1"):
        tile_grid((10, 10), 0, 2)


def test_dask_and_zarr_arrays_in_a_zarr_array_out(problem, tmp_path):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    image, logits = problem
    crf = GridCRF(weight=2.0)
    want = refine_tiles(crf, image, logits, kind="logits", tile_size=128)
    scores = zarr.open_array(tmp_path / "scores.zarr", mode="w", shape=logits.shape,
                             chunks=(64, 64, logits.shape[-1]), dtype="f2")
    scores[:] = logits
    out = zarr.open_array(tmp_path / "labels.zarr", mode="w", shape=image.shape[:2],
                          chunks=(100, 100), dtype="u1")
    refine_tiles(crf, da.from_array(image, chunks=(50, 70, 3)), scores, kind="logits",
                 tile_size=128, out=out)
    np.testing.assert_array_equal(out[:], want)
