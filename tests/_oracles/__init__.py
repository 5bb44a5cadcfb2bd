"""Plain-numpy oracles of hybridseg's fast kernels, one short readable implementation each
(the habit of stumpy's ``tests/naive.py``): the tests hold the numba and torch code to them
on tiny and random inputs.

- ``dense``: Gaussian kernels by brute force over all pixel pairs, and the dense CRF's mean
  field with a hand-written backward (``DenseCRF``, ``CRFRNN``, ``crf._learn``).
- ``grid``: grid CRF energies, their minimum by enumeration, alpha-expansion move by
  move, the grid mean field's free energy, minimum cuts by trying every cut.
- ``metrics``: confusion matrix, IoU family, boundary F1 and boundary-band mIoU by pixel
  loops.
- ``losses``: log-softmax and labelled pixels for the segmentation losses.
- ``classical``: quadtree split, split-and-merge, Sobel and Hessian features.

The package's own ``crf/_exact.py`` (explicit ``N x N`` kernels) is a DenseCRF backend, not
an oracle; the tests check it against ``dense`` too.

``tests/`` is put on ``sys.path`` by ``tests/conftest.py``: import as
``from _oracles import brute_force`` or ``from _oracles import dense``.
"""

from . import classical, dense, grid, losses, metrics
from .classical import (
    interior_hessian_eigs,
    interior_sobel_magnitude,
    merge_oracle,
    qtdecomp_oracle,
    same_partition,
)
from .dense import (
    dense_crf_features,
    free_energy,
    gaussian_filter,
    gaussian_kernel,
    log_loss,
    mean_field,
    mean_field_backward,
    normalised_kernel,
)
from .grid import (
    all_labellings,
    brute_binary_energy,
    brute_force,
    brute_force_min,
    brute_min_cut,
    cut_value,
    expansion_oracle,
    grid_energy,
    kl_free_energy,
    tiny_grid,
)
from .losses import np_log_softmax, np_pixels
from .metrics import (
    naive_boundary_f1_image,
    naive_boundary_miou,
    naive_confusion,
    naive_scores,
)

__all__ = [
    "all_labellings",
    "brute_binary_energy",
    "brute_force",
    "brute_force_min",
    "brute_min_cut",
    "classical",
    "cut_value",
    "dense",
    "dense_crf_features",
    "expansion_oracle",
    "free_energy",
    "gaussian_filter",
    "gaussian_kernel",
    "grid",
    "grid_energy",
    "interior_hessian_eigs",
    "interior_sobel_magnitude",
    "kl_free_energy",
    "log_loss",
    "losses",
    "mean_field",
    "mean_field_backward",
    "merge_oracle",
    "metrics",
    "naive_boundary_f1_image",
    "naive_boundary_miou",
    "naive_confusion",
    "naive_scores",
    "normalised_kernel",
    "np_log_softmax",
    "np_pixels",
    "qtdecomp_oracle",
    "same_partition",
    "tiny_grid",
]
