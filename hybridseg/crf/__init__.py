"""Structured refiners: conditional random fields over the pixels of an image.

- ``DenseCRF``: the fully connected CRF (Gaussian and bilateral kernels, mean field on a
  permutohedral lattice, in numba), with extra kernels (``Kernel``) on any features, learnable
  weights and compatibility, and a ``MeanFieldTrace`` of energy and time per iteration.
- ``GridCRF``: the 4/8-connected (6/26 in 3-D) CRF with Potts, contrast-sensitive or any
  compatibility, by alpha-expansion or alpha-beta swap on a Boykov-Kolmogorov min cut,
  ICM, or mean field, in numba.

Importing this module compiles nothing; the numba kernels compile on first use and are
cached on disk.
"""

from ._dense import DenseCRF, Kernel, MeanFieldTrace
from ._grid import GridCRF

__all__ = ["DenseCRF", "GridCRF", "Kernel", "MeanFieldTrace"]
