"""Structured refiners: conditional random fields over the pixels of an image.

- ``DenseCRF``: the fully connected CRF (Gaussian and bilateral kernels, mean field on a
  permutohedral lattice, in numba), with extra kernels (``Kernel``) on any features, learnable
  weights and compatibility, and a ``MeanFieldTrace`` of energy and time per iteration.
- ``GridCRF``: the 4/8-connected (6/26 in 3-D) CRF with Potts, contrast-sensitive or any
  compatibility, by alpha-expansion or alpha-beta swap on a Boykov-Kolmogorov min cut,
  ICM, or mean field, in numba.
- ``refine_tiles``: any refiner on an image of any size, tile by tile with a margin,
  reading the image and scores by slices and writing the labels by slices;
  ``tile_grid``, ``refine_tile`` and ``default_overlap``, its parts, for a tile loop of
  your own.

- ``mean_field_forward`` and ``mean_field_backward``: the dense CRF's mean field and its
  exact gradient on ``LatticeKernel`` s (``dense_kernels`` builds the two built-in ones),
  on ndarrays or tensors: the engine ``DenseCRF`` and ``CRFRNN`` run;
  ``DENSE_CRF_DEFAULTS`` and ``compat_matrix``, the defaults and compatibilities they share.

Importing this module compiles nothing; the numba kernels compile on first use and are
cached on disk.
"""

from ._dense import DenseCRF, Kernel, MeanFieldTrace
from ._engine import dense_kernels, mean_field_backward, mean_field_forward
from ._grid import GridCRF
from ._kernels import DENSE_CRF_DEFAULTS, compat_matrix
from ._tiles import default_overlap, refine_tile, refine_tiles, tile_grid

__all__ = ["DENSE_CRF_DEFAULTS", "DenseCRF", "GridCRF", "Kernel", "LatticeKernel",
           "MeanFieldTrace", "compat_matrix", "default_overlap", "dense_kernels",
           "mean_field_backward", "mean_field_forward", "refine_tile", "refine_tiles",
           "tile_grid"]


def __getattr__(name):
    if name == "LatticeKernel":  # its module imports numba: loaded on first use
        from ._meanfield import LatticeKernel

        return LatticeKernel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
