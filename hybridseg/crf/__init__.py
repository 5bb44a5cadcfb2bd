"""Structured refiners: conditional random fields over the pixels of an image.

- ``DenseCRF``: the fully connected CRF (Gaussian and bilateral kernels, mean field on a
  permutohedral lattice, in numba).

Importing this module compiles nothing; the numba kernels compile on first use and are
cached on disk.
"""

from ._dense import DenseCRF

__all__ = ["DenseCRF"]
