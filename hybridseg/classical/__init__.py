"""Classical stages: gray-level split-and-merge and pixel classifiers on hand-made features.

- ``quadtree_split``: the split step of split-and-merge (MATLAB ``qtdecomp`` semantics);
- ``SplitMerge``: split, merge adjacent homogeneous regions, and learn readable rules
  (region statistics -> class) from labelled images;
- ``PixelClassifier``: multiscale intensity, edge, texture, colour and position features per
  pixel and any scikit-learn classifier, with out-of-fold unaries from ``fit_transform``;
- ``make_classical_pipeline``: the named pipelines (``"splitmerge"``, ``"pixel"``,
  ``"pixel+grid"``, ``"pixel+dense"``) as scikit-learn ``Pipeline`` objects, built of the
  stages ``make_classical_stage`` makes (which ``hybridseg compare`` uses too).

Importing this module compiles nothing; the numba kernels compile on first use and are
cached on disk.
"""

from ._features import pixel_features
from ._pipelines import (
    CLASSICAL_PIPELINES,
    CLASSICAL_STAGES,
    make_classical_pipeline,
    make_classical_stage,
)
from ._pixel import PixelClassifier
from ._quadtree import quadtree_split
from ._split_merge import SplitMerge

__all__ = [
    "CLASSICAL_PIPELINES",
    "CLASSICAL_STAGES",
    "PixelClassifier",
    "SplitMerge",
    "make_classical_pipeline",
    "make_classical_stage",
    "pixel_features",
    "quadtree_split",
]
