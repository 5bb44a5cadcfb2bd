"""The public face of the dense CRF's mean-field engine (``_meanfield``): what ``deep/``
and users call, importable without compiling anything."""

from __future__ import annotations

import numpy as np

from ._kernels import DENSE_CRF_DEFAULTS

__all__ = ["dense_kernels", "mean_field_backward", "mean_field_forward"]


def _is_tensor(x):
    return type(x).__module__.split(".")[0] == "torch"


def dense_kernels(image, *, gaussian_sxy=DENSE_CRF_DEFAULTS["gaussian_sxy"],
                  bilateral_sxy=DENSE_CRF_DEFAULTS["bilateral_sxy"],
                  bilateral_srgb=DENSE_CRF_DEFAULTS["bilateral_srgb"], engine="auto",
                  dtype=None):
    """The dense CRF's two built-in kernels on one image, unit weight: the smoothness
    kernel on pixel positions and the appearance kernel on positions and colours.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray or torch.Tensor
        Channels last, in the units of ``bilateral_srgb`` (0-255 for 8-bit images).
    gaussian_sxy, bilateral_sxy : float, default=3.0, 80.0
        Spatial standard deviations, in pixels (``DENSE_CRF_DEFAULTS``).
    bilateral_srgb : float, default=13.0
        Colour standard deviation.
    engine : {"auto", "numba", "torch"}, default="auto"
        "numba": :class:`LatticeKernel` s (float32, CPU); "torch": torch lattice kernels
        on the tensor's device in ``dtype``; "auto": numba for an ndarray or a float32 CPU
        tensor, torch otherwise.
    dtype : torch.dtype, optional
        Precision of torch kernels (the tensor's floating dtype by default).

    Returns
    -------
    kernels : tuple of 2 kernels
        For :func:`mean_field_forward`. The smoothness kernel of the last few image sizes
        is kept and shared (it depends on the size only).
    """
    from ._kernels import builtin_kernels, kernel_features

    if engine not in ("auto", "numba", "torch"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'torch', got {engine!r}")
    tensor = _is_tensor(image)
    if not tensor:
        image = np.asarray(image)
    if image.ndim not in (2, 3) or 0 in tuple(image.shape[:2]):
        raise ValueError(f"image must be (H, W) or (H, W, C) with channels last, got shape "
                         f"{tuple(image.shape)}")
    specs = builtin_kernels(gaussian_sxy, 1.0, bilateral_sxy, bilateral_srgb, 1.0)
    if tensor:
        import torch

        dtype = dtype or (image.dtype if image.is_floating_point() else torch.float32)
        if engine == "auto":
            engine = ("numba" if image.device.type == "cpu" and dtype == torch.float32
                      else "torch")
    elif engine == "torch":
        raise ValueError("engine='torch' needs the image as a torch tensor")
    else:
        engine = "numba"
    spatial = tuple(image.shape[:2])
    if engine == "numba":
        from ._meanfield import LatticeKernel, position_kernel

        pixels = image.detach().cpu().numpy() if tensor else image
        return (position_kernel(spatial, gaussian_sxy),
                LatticeKernel(kernel_features(specs[1], pixels, spatial, name="bilateral")))
    from ._torch_lattice import NormalizedKernel

    return tuple(
        NormalizedKernel(kernel_features(spec, image.detach(), spatial, name=name,
                                         device=image.device, dtype=dtype), dtype, "torch")
        for spec, name in zip(specs, ("gaussian", "bilateral")))


def mean_field_forward(logits, kernels, weights, compat, n_iter, *, output="proba",
                       tape=False):
    """The dense CRF's parallel mean field on one image, from logits.

    ``Z_t = a - M_t mu^T`` with ``M_t = sum_m w_m K_m Q_{t-1}``, ``Q_t = softmax(Z_t)``,
    ``Q_0 = softmax(a)``; the same engine ``DenseCRF.refine`` and ``DenseCRF.fit`` run.

    Given ndarrays, the numba execution runs (float32); given tensors, gradients flow to
    ``logits``, ``weights`` and ``compat`` by autograd: through the numba execution's
    exact backward for numba kernels (float32 on the CPU), or through the torch lattice
    for torch kernels (any device, float32 or float64).

    Parameters
    ----------
    logits : (N, K) array_like of float, or torch.Tensor
        ``a = -U``, the unary logits of the N points.
    kernels : sequence of kernels
        Unit-weight normalised kernels on the same N points (:func:`dense_kernels`, or
        :class:`LatticeKernel` s on any features).
    weights : (M,) array_like of float
        The kernel weights ``w_m``.
    compat : (K, K) array_like or None
        The label compatibility ``mu`` (a penalty); None for Potts (``mu = -I``).
    n_iter : int
    output : {"proba", "logits"}, default="proba"
        Return ``Q_T`` or ``Z_T``.
    tape : bool, default=False
        Also return what :func:`mean_field_backward` needs (``T`` arrays of ``(N, K)``);
        ndarrays only.

    Returns
    -------
    out : (N, K) ndarray of float32
    tape : Tape, only with ``tape=True``
    """
    if output not in ("proba", "logits"):
        raise ValueError(f"output must be 'proba' or 'logits', got {output!r}")
    if _is_tensor(logits):
        if tape:
            raise ValueError("tape is for ndarrays: tensors get their gradients by autograd")
        if logits.ndim != 2:
            raise ValueError(f"logits must be (N, K), got shape {tuple(logits.shape)}")
        from ._meanfield_torch import mean_field_tensors

        return mean_field_tensors(logits, list(kernels), weights, compat, int(n_iter), output)
    from ._meanfield import forward, logits_rows

    a = np.asarray(logits, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"logits must be (N, K), got shape {a.shape}")
    k = a.shape[1]
    mu = None if compat is None else np.asarray(compat, dtype=np.float32)
    if mu is not None and mu.shape != (k, k):
        raise ValueError(f"compat must be ({k}, {k}), got shape {mu.shape}")
    return forward(logits_rows(a, "logits"), list(kernels), weights, mu,
                   int(n_iter), k=k, output=output, tape=tape)


def mean_field_backward(tape, grad_z, *, want_mu=False):
    """The exact gradient of :func:`mean_field_forward` from ``dL/dZ_T``.

    Parameters
    ----------
    tape : Tape
        From ``mean_field_forward(..., tape=True)``.
    grad_z : (N, K) array_like of float
        ``dL/dZ_T`` (for a loss on ``Q_T``, pass it through the softmax first).
    want_mu : bool, default=False
        Also the gradient of ``compat`` (from any tape, a Potts one too: at ``-I``).

    Returns
    -------
    grad_logits : (N, K) ndarray of float32
    grad_weights : (M,) ndarray of float64
    grad_compat : (K, K) ndarray of float64, or None
    """
    from ._meanfield import backward

    return backward(tape, grad_z, want_mu=want_mu)
