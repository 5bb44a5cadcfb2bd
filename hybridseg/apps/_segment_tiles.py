"""``segment``'s path for images above ``tile_above`` pixels: the tiles of one image as
tasks, each tile's labels kept in a file of the image's ``.parts`` folder until every tile
is done (so that a killed run resumes by tile), then one tiled output written atomically.

Layout, for the input ``big.tif`` and the output folder ``OUT``::

    OUT/.big.tif.parts/job.json          what the tiles were computed from
    OUT/.big.tif.parts/r0003_c0012.npy   the labels of one tile's core
    OUT/big.tif                          the tiled label TIFF, once every tile is done

``job.json`` holds the input's and the model's size and modification time, ``refine``,
the tile size and margin: a rerun with any of them changed starts the tiles afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil

import numpy as np

from ..datasets._raster import TIFF_SUFFIXES, is_zarr_path
from ..utils._io import write_atomic, write_text_atomic

__all__ = ["TiledImage", "assemble", "plan_tiled", "tile_margin", "tiled_extension"]

#: Side of the output's TIFF tiles and zarr chunks.
OUT_TILE = 256
#: A network's margin around each tile when no CRF sets a wider one, in pixels.
NETWORK_MARGIN = 128


def tiled_extension(src):
    """The output's suffix for an input segmented by tiles: a zarr store for zarr, a
    tiled TIFF for a TIFF, a PNG (assembled in memory) for any other image."""
    if is_zarr_path(src):
        return ".zarr"
    if src.lower().endswith(TIFF_SUFFIXES):
        return ".tif"
    return ".png"


def tile_margin(refine):
    """The margin each tile is predicted and refined with: the CRF's default overlap
    (240 pixels for the dense CRF), and at least ``NETWORK_MARGIN``."""
    from ..crf import DenseCRF, GridCRF, default_overlap

    refiner = {"dense": DenseCRF, "grid": GridCRF}.get(refine)
    return max(NETWORK_MARGIN, default_overlap(refiner()) if refiner else 0)


@dataclasses.dataclass
class TiledImage:
    """One image segmented by tiles: where its parts and its output go."""

    src: str
    rel_out: str
    shape: tuple
    parts: str
    tiles: list  # (core, halo) slice pairs
    todo: list  # indices into tiles of those without a file yet

    def tile_path(self, i):
        core = self.tiles[i][0]
        return os.path.join(self.parts, f"r{core[0].start:07d}_c{core[1].start:07d}.npy")


def _stamp(path):
    st = os.stat(path)
    return [st.st_mtime_ns, st.st_size]


def plan_tiled(src, rel_out, output, shape, *, model_stamp, refine, tile_size, overwrite):
    """The ``TiledImage`` of ``src``: its tiles, and those a killed run already wrote
    (kept when ``job.json`` matches this run; the parts start afresh otherwise).

    Returns
    -------
    image : TiledImage
    restarted : bool
        Whether parts of an earlier run with other settings were discarded.
    """
    from ..crf import tile_grid

    margin = tile_margin(refine)  # segment checked that tile_size exceeds it
    out_path = os.path.join(output, rel_out)
    folder, name = os.path.split(out_path)
    parts = os.path.join(folder, f".{name}.parts")
    job = {"input": os.path.abspath(src), "input_stamp": _stamp(src), "model": model_stamp,
           "refine": refine, "tile_size": int(tile_size), "margin": int(margin),
           "shape": [int(n) for n in shape[:2]]}
    restarted = False
    if os.path.isdir(parts):
        try:
            with open(os.path.join(parts, "job.json")) as fh:
                same = json.load(fh) == json.loads(json.dumps(job))
        except (OSError, ValueError):
            same = False
        if overwrite or not same:
            shutil.rmtree(parts)
            restarted = not overwrite
    tiles = tile_grid(shape[:2], tile_size, margin)
    image = TiledImage(src=src, rel_out=rel_out, shape=tuple(shape[:2]), parts=parts,
                       tiles=tiles, todo=[])
    if not os.path.isdir(parts):
        os.makedirs(parts)
        write_text_atomic(os.path.join(parts, "job.json"), json.dumps(job, indent=1))
    image.todo = [i for i in range(len(tiles)) if not os.path.isfile(image.tile_path(i))]
    return image, restarted


def _rows(image, y0, y1, cache):
    """Rows ``y0:y1`` of the label map, from the tile files (``cache`` keeps the last
    row of tiles read)."""
    pieces = []
    for band in sorted({core[0].start for core, _ in image.tiles}):
        cores = [i for i, (core, _) in enumerate(image.tiles) if core[0].start == band]
        b0, b1 = image.tiles[cores[0]][0][0].start, image.tiles[cores[0]][0][0].stop
        if b1 <= y0 or b0 >= y1:
            continue
        if cache.get("band") != band:
            cache.clear()
            cache["band"] = band
            cache["rows"] = np.concatenate([np.load(image.tile_path(i)) for i in cores], 1)
        pieces.append(cache["rows"][max(y0, b0) - b0:min(y1, b1) - b0])
    return np.concatenate(pieces, 0)


def _palette():
    from ..datasets._benchmarks import voc_colormap

    return (voc_colormap().astype(np.uint16).T * 257).astype(np.uint16)


def _write_tif(image, path, dtype):
    import tifffile

    h, w = image.shape
    t = OUT_TILE

    def tiles():
        cache = {}
        for y in range(0, h, t):
            rows = _rows(image, y, min(y + t, h), cache)
            for x in range(0, w, t):
                tile = np.zeros((t, t), dtype)
                block = rows[:, x:x + t]
                tile[:block.shape[0], :block.shape[1]] = block
                yield tile

    extra = ({"photometric": "palette", "colormap": _palette()} if dtype == np.uint8
             else {"photometric": "minisblack"})
    write_atomic(path, lambda f: tifffile.imwrite(
        f, tiles(), shape=(h, w), dtype=dtype, tile=(t, t), bigtiff=h * w > 2**31,
        compression="zlib", **extra))


def _write_zarr(image, path, dtype):
    import zarr

    h, w = image.shape
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        z = zarr.open_array(tmp, mode="w", shape=(h, w), chunks=(OUT_TILE, OUT_TILE),
                            dtype=dtype)
        cache = {}
        for y in range(0, h, OUT_TILE):
            z[y:y + OUT_TILE] = _rows(image, y, min(y + OUT_TILE, h), cache)
        if os.path.lexists(path):  # overwrite: the old store goes only once the new is whole
            old = os.path.join(folder, f".{name}.{os.getpid()}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def assemble(image, output, save_png):
    """Write the output of ``image`` from its tile files (``save_png(labels)`` gives the
    writer of a PNG), then remove its parts."""
    path = os.path.join(output, image.rel_out)
    dtype = np.load(image.tile_path(0), mmap_mode="r").dtype
    ext = os.path.splitext(path)[1]
    if ext == ".tif":
        _write_tif(image, path, dtype)
    elif ext == ".zarr":
        _write_zarr(image, path, dtype)
    else:
        write_atomic(path, save_png(_rows(image, 0, image.shape[0], {})))
    with contextlib.suppress(OSError):
        shutil.rmtree(image.parts)
