"""Loaders for real segmentation data sets, the embedded sample, and a CamVid fetcher.

Every loader returns a ``Dataset`` record (a dict read by attribute too) with
``images`` (list of arrays), ``labels`` (list of ``(H, W)`` uint8 label maps, void pixels
set to ``ignore_index``), ``class_names``, ``ignore_index``, ``name``, ``filenames``,
``colors`` and ``description``.

``load_voc``, ``load_cityscapes``, ``load_ade20k``, ``load_pascal_context`` and
``load_coco_stuff`` read the field's benchmark data sets from their official layouts
(downloaded by the user under each data set's terms, or by ``fetch_dataset`` where the
terms allow a direct download).

``load_splits`` gives the train, val and test splits of a data set (CamVid, the ISBI 2012
stack, the embedded samples, a folder), defined once for compare, the pipeline scripts and
the benchmarks.

``open_raster`` opens a large image on disk (TIFF, BigTIFF, OME-TIFF, zarr) for reading
by windows, as ``refine_tiles`` and ``segment`` read it.

``make_noisy_scores`` simulates a mediocre model's logits from label maps, for
experiments with refiners.
"""

from ._base import Dataset, clear_data_home, get_data_home
from ._benchmarks import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    COCO_STUFF_CLASSES,
    PASCAL_CONTEXT_CLASSES,
    VOC_CLASSES,
    load_ade20k,
    load_cityscapes,
    load_coco_stuff,
    load_pascal_context,
    load_voc,
)
from ._camvid import CAMVID_CLASSES, fetch_camvid, load_camvid
from ._fetch import fetch_dataset
from ._folder import load_folder
from ._isbi import ISBI_CLASSES, load_isbi_membrane
from ._raster import Raster, open_raster
from ._sample import load_sample
from ._splits import load_splits
from ._synthetic import make_noisy_scores

__all__ = [
    "ADE20K_CLASSES",
    "CAMVID_CLASSES",
    "CITYSCAPES_CLASSES",
    "COCO_STUFF_CLASSES",
    "ISBI_CLASSES",
    "PASCAL_CONTEXT_CLASSES",
    "VOC_CLASSES",
    "Dataset",
    "Raster",
    "clear_data_home",
    "fetch_camvid",
    "fetch_dataset",
    "get_data_home",
    "load_ade20k",
    "load_camvid",
    "load_cityscapes",
    "load_coco_stuff",
    "load_folder",
    "load_isbi_membrane",
    "load_pascal_context",
    "load_sample",
    "load_splits",
    "load_voc",
    "make_noisy_scores",
    "open_raster",
]
