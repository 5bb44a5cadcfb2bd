"""The dense CRF's kernels, described once for every execution.

The defaults of the two built-in kernels, the ``Kernel`` description of any Gaussian
kernel, the label compatibility, and the one function that builds a kernel's per-point
features: in numpy for the numba lattice, or in torch on any device for the torch
lattice, in 2-D or in volumes, by the same float64 arithmetic, so that both executions
filter with the same float32 features bit for bit. ``DenseCRF`` (every backend, and
``fit``) and the CRF-as-RNN layer build their kernels here.

torch is imported only inside the functions that build features on a device.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

__all__ = ["DENSE_CRF_DEFAULTS", "Kernel", "builtin_kernels", "compat_matrix",
           "kernel_features", "positions"]

#: The kernel parameters of Krähenbühl & Koltun's dense CRF as pydensecrf's examples and
#: DeepLab use them: the smoothness kernel (``gaussian_*``) and the appearance kernel
#: (``bilateral_*``, ``bilateral_srgb`` in 0-255 units). ``DenseCRF`` and ``CRFRNN`` take
#: their defaults from here.
DENSE_CRF_DEFAULTS = MappingProxyType({
    "gaussian_sxy": 3.0,
    "gaussian_weight": 3.0,
    "bilateral_sxy": 80.0,
    "bilateral_srgb": 13.0,
    "bilateral_weight": 10.0,
})

# pydensecrf's symmetric normalisation adds this to the filtered ones before the square root.
NORM_EPS = 1e-20

# Lattice keys are int32: scaled features must stay well inside that range.
MAX_LATTICE_COORD = 2.0**28


@dataclass(frozen=True)
class Kernel:
    """An extra Gaussian kernel of a ``DenseCRF``, over any per-pixel features.

    ``k(i, j) = exp(-|p_i - p_j|^2 / 2 sxy^2 - sum_c |f_ic - f_jc|^2 / 2 sfeat_c^2)``, with
    ``p`` pixel positions (dropped when ``sxy`` is None) and ``f`` the feature channels.

    Parameters
    ----------
    weight : float, default=1.0
        Its weight in the energy (learned by ``DenseCRF.fit`` like the built-in ones).
    features : str or callable, default="image"
        Where the feature channels come from: ``"image"`` (the image's channels), the name
        of an array passed to ``DenseCRF.refine(..., features={name: array})`` (shape
        ``(H, W)`` or ``(H, W, F)``, of a volume ``(D, H, W[, F])``), or a callable
        ``features(image) -> array`` of that shape (which also works in
        ``predict_proba`` and ``fit``, where only images are at hand).
    sfeat : float or sequence of float, default=1.0
        Standard deviation of the features, one for all channels or one per channel.
    sxy : float, optional
        Spatial standard deviation, in pixels (or in ``spacing`` units); None for a kernel
        on the features alone.

    Examples
    --------
    A third kernel on depth, close in space and in depth:

    >>> from hybridseg.crf import DenseCRF, Kernel
    >>> crf = DenseCRF(extra_kernels=[Kernel(weight=5.0, features="depth", sfeat=0.2,
    ...                                       sxy=40.0)])
    """

    weight: float = 1.0
    features: str | Callable = "image"
    sfeat: float | tuple = 1.0
    sxy: float | None = None

    def _check(self, name):
        w = self.weight
        if not isinstance(w, numbers.Real) or isinstance(w, bool) or not w >= 0:
            raise ValueError(f"{name}.weight must be a float >= 0, got {w!r}")
        if self.sxy is not None and (
            not isinstance(self.sxy, numbers.Real) or not self.sxy > 0
        ):
            raise ValueError(f"{name}.sxy must be None or a float > 0, got {self.sxy!r}")
        sf = np.atleast_1d(np.asarray(self.sfeat, dtype=float))
        if sf.ndim != 1 or sf.size == 0 or not (np.isfinite(sf) & (sf > 0)).all():
            raise ValueError(
                f"{name}.sfeat must be a float > 0 or a sequence of them, got {self.sfeat!r}"
            )
        if not (isinstance(self.features, str) or callable(self.features)):
            raise TypeError(
                f"{name}.features must be 'image', the name of an array passed to refine, "
                f"or a callable, got {type(self.features).__name__}"
            )


def builtin_kernels(gaussian_sxy, gaussian_weight, bilateral_sxy, bilateral_srgb,
                    bilateral_weight):
    """The smoothness and appearance kernels as ``[Kernel, Kernel]``."""
    return [Kernel(gaussian_weight, None, 1.0, gaussian_sxy),
            Kernel(bilateral_weight, "image", bilateral_srgb, bilateral_sxy)]


def compat_matrix(compat, n_classes):
    """None for Potts; else the symmetric ``(K, K)`` label compatibility (a penalty).

    ``compat`` is ``"potts"`` (or any string: the caller has checked it), a ``(K,)`` vector
    ``c`` of per-class Potts weights (``-diag(c)``), or a ``(K, K)`` matrix, of which only
    the symmetric part defines an energy (as pydensecrf's ``MatrixCompatibility``).
    """
    if isinstance(compat, str):
        return None
    mu = np.asarray(compat, dtype=np.float64)
    if not np.isfinite(mu).all():
        raise ValueError("compat holds NaN or infinite values")
    if mu.ndim == 1:
        if mu.shape[0] != n_classes:
            raise ValueError(f"compat has {mu.shape[0]} per-class weights for {n_classes} classes")
        return -np.diag(mu)
    if mu.ndim != 2 or mu.shape != (n_classes, n_classes):
        raise ValueError(
            f"compat must be 'potts', a (K,) vector or a (K, K) matrix with K = {n_classes}, "
            f"got shape {mu.shape}"
        )
    return 0.5 * (mu + mu.T)


def positions(spatial_shape, sxy, spacing=None, *, device=None, origin=None):
    """Per-point positions ``x, y[, z] * spacing / sxy``: ``(N, ndim)`` float64.

    Columns in pydensecrf's order (x first), rows over the row-major points of
    ``spatial_shape``, counted from ``origin`` (the index of the first point in a larger
    image; 0 by default). A numpy array, or with ``device`` a torch tensor there, by the
    same float64 arithmetic.
    """
    sp = (1.0,) * len(spatial_shape) if spacing is None else spacing
    start = (0,) * len(spatial_shape) if origin is None else origin
    axes = range(len(spatial_shape) - 1, -1, -1)
    n = int(np.prod(spatial_shape))
    if device is None:
        grids = np.meshgrid(*[np.arange(o, o + m, dtype=np.float64)
                              for o, m in zip(start, spatial_shape)],
                            indexing="ij", sparse=True)
        return np.stack([np.broadcast_to(grids[a] * (sp[a] / sxy), spatial_shape).reshape(n)
                         for a in axes], 1)
    import torch

    grids = torch.meshgrid(*[torch.arange(o, o + m, dtype=torch.float64, device=device)
                             for o, m in zip(start, spatial_shape)], indexing="ij")
    return torch.stack([(grids[a] * (sp[a] / sxy)).reshape(n) for a in axes], 1)


def check_feature_range(top, n_features, name):
    """Refuse features whose largest magnitude ``top`` (in standard deviations) is too
    large to embed: the lattice scales features by at most sqrt(2/3)(d+1), and its keys
    stay in int32."""
    if top * np.sqrt(2.0 / 3.0) * (n_features + 1) > MAX_LATTICE_COORD:
        raise ValueError(
            f"a standard deviation of the {name} kernel is too small for this image: "
            f"features reach {top:.3g} standard deviations; use a larger sigma (below "
            "about 1e-5 of the image's range nothing is smoothed anyway)"
        )


def _warn_unit_image(low, high, sfeat, name):
    """Warn when a float image in [0, 1] meets a colour deviation made for 0-255 units:
    every colour difference is then a small fraction of a deviation, and the kernel is
    blind to appearance (``bilateral_srgb=13`` on such an image smooths across edges)."""
    if float(sfeat.min()) > 2.0 and low >= 0.0 and high <= 1.0:
        warnings.warn(
            f"the image is floating point with values in [{low:.3g}, {high:.3g}], but the "
            f"{name} kernel's colour standard deviation is {float(sfeat.min()):g} (0-255 "
            "units): it sees almost no colour difference and smooths across edges. Pass "
            "the image in 0-255 units (uint8, or the floats times 255), or divide the "
            "colour standard deviation by 255", UserWarning, stacklevel=4)


def _source(spec, image, features, name):
    """The array a kernel's feature channels come from (the image, a named array, or the
    callable's output)."""
    if isinstance(spec.features, str) and spec.features == "image":
        return image
    if isinstance(spec.features, str):
        if features is None or spec.features not in features:
            raise ValueError(
                f"{name} reads the features {spec.features!r}: pass them as "
                f"refine(..., features={{{spec.features!r}: array}})"
            )
        return features[spec.features]
    return spec.features(image)


def kernel_features(spec, image, spatial_shape, *, spacing=None, features=None,
                    name="kernel", device=None, dtype=None, origin=None):
    """The ``(N, d)`` features of one kernel on one image, divided by its deviations.

    Parameters
    ----------
    spec : Kernel
        The kernel (``sxy`` None: no positions; ``features`` None: no feature channels).
    image : ndarray or torch.Tensor of shape (*spatial_shape) or (*spatial_shape, C)
        Channels last. A tensor builds the features with torch on ``device``.
    spatial_shape : tuple of int
        ``(H, W)`` or ``(D, H, W)``.
    spacing : tuple of float, optional
        Physical size of a pixel along each axis.
    features : mapping of str to array_like, optional
        Named per-pixel arrays, for kernels that read one.
    name : str
        The kernel's name in error messages.
    device : str or torch.device, optional
        None: numpy, for the numba lattice. Else torch tensors there, for the torch
        lattice; a feature array that is not a tensor is moved there.
    dtype : dtype, optional
        Of the result: ``np.float32`` (numpy) or ``torch.float32`` (torch) by default.
    origin : tuple of int, optional
        Index of the first pixel in a larger image (``positions``).

    Returns
    -------
    (N, d) ndarray or torch.Tensor
        Positions (x first) then feature channels, computed in float64 and then cast.
    """
    if device is not None:
        import torch
    n = int(np.prod(spatial_shape))
    cols = []
    if spec.sxy is not None:
        cols.append(positions(spatial_shape, spec.sxy, spacing, device=device,
                              origin=origin))
    if spec.features is not None:
        values = _source(spec, image, features, name)
        if device is None:
            values = np.asarray(values)
            kind = values.dtype.kind
        else:
            values = torch.as_tensor(values, device=device)
            kind = ("f" if values.is_floating_point() else "c" if values.is_complex()
                    else "b" if values.dtype == torch.bool else "i")
        if kind not in "uif":
            raise TypeError(f"the features of {name} must be numeric, got {values.dtype}")
        if tuple(values.shape[:len(spatial_shape)]) != tuple(spatial_shape) or values.ndim > len(
                spatial_shape) + 1:
            raise ValueError(
                f"the features of {name} have shape {tuple(values.shape)}, expected "
                f"{tuple(spatial_shape)} or {(*spatial_shape, 'F')}"
            )
        values = values.reshape(n, -1)
        sfeat = np.atleast_1d(np.asarray(spec.sfeat, dtype=np.float64))
        if sfeat.size not in (1, values.shape[1]):
            raise ValueError(
                f"{name} has {sfeat.size} feature standard deviations for "
                f"{values.shape[1]} feature channels"
            )
        sfeat = np.broadcast_to(sfeat, (values.shape[1],))
        if device is None:
            values = values.astype(np.float64)
            finite = bool(np.isfinite(values).all())
        else:
            values = values.to(torch.float64)
            finite = bool(torch.isfinite(values).all())
        if not finite:
            raise ValueError(f"the features of {name} hold NaN or infinite values")
        if kind == "f" and isinstance(spec.features, str) and spec.features == "image":
            _warn_unit_image(float(values.min()), float(values.max()), sfeat, name)
        if device is None:
            cols.append(values / sfeat)
        else:
            cols.append(values / torch.as_tensor(sfeat.copy(), device=device))
    if device is None:
        f = np.concatenate(cols, axis=1)
        check_feature_range(float(np.abs(f).max()), f.shape[1], name)
        return np.ascontiguousarray(f, dtype=np.float32 if dtype is None else dtype)
    f = torch.cat(cols, 1)
    check_feature_range(float(f.abs().max()), f.shape[1], name)
    return f.to(torch.float32 if dtype is None else dtype).contiguous()
