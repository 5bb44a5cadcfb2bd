"""Structured refiners: conditional random fields over the pixels of an image.

- ``DenseCRF``: the fully connected CRF (Gaussian and bilateral kernels, mean field on a
  permutohedral lattice, in numba), with extra kernels (``Kernel``) on any features, learnable
  weights and compatibility, and a ``MeanFieldTrace`` of energy and time per iteration.

Importing this module compiles nothing; the numba kernels compile on first use and are
cached on disk.
"""

from ._dense import DenseCRF, Kernel, MeanFieldTrace

__all__ = ["DenseCRF", "Kernel", "MeanFieldTrace"]
