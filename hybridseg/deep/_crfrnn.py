"""CRFRNN: the dense CRF's mean-field iterations as a differentiable torch layer
(Zheng et al., "Conditional Random Fields as Recurrent Neural Networks", ICCV 2015).

The model is ``DenseCRF``'s, number for number: a Gaussian kernel on pixel positions and a
bilateral kernel on positions and colours, with pydensecrf's symmetric normalisation, and
parallel mean-field updates ``Q <- softmax(logits - (w_g K_g Q + w_b K_b Q) mu^T)``,
``mu = -I`` for Potts. One permutohedral lattice per image and kernel is built per forward
and reused by every iteration and every label channel.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..crf._kernels import DENSE_CRF_DEFAULTS, compat_matrix
from ..utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from ._torch import require_torch

torch = require_torch()
nn = torch.nn

__all__ = ["CRFRNN", "UnaryCRF"]

_POSITIVE = Interval(numbers.Real, 0, np.inf, closed="neither")
# Kernel weights: finite, and small enough that messages stay finite in float32.
_FINITE = Interval(numbers.Real, -1e6, 1e6)


class _MeanFieldNumba(torch.autograd.Function):
    """The whole mean field of one image on the CPU in float32: the dense CRF's engine
    (``hybridseg.crf``'s ``mean_field_forward`` with a tape, and its exact backward, the
    one ``DenseCRF.fit`` learns with).

    Inputs: ``neg_unary`` (HW, K) logits, the two kernel weights (0-d), ``mu`` (K, K) and
    the two unit-weight lattice kernels. Output: the last update's logits ``z_T``.
    """

    @staticmethod
    def forward(ctx, neg_unary, wg, wb, mu, kernels, n_iter):
        from ..crf import mean_field_forward

        a = np.ascontiguousarray(neg_unary.detach().numpy(), dtype=np.float32)
        k = a.shape[1]
        mu32 = np.ascontiguousarray(mu.detach().numpy(), dtype=np.float32)
        want_mu = bool(ctx.needs_input_grad[3])
        potts = not want_mu and np.array_equal(mu32, -np.eye(k, dtype=np.float32))
        z, ctx.tape = mean_field_forward(a, list(kernels), [float(wg), float(wb)],
                                         None if potts else mu32, n_iter, output="logits",
                                         tape=True, keep_messages=want_mu)
        ctx.want_mu = want_mu
        return torch.from_numpy(z)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        from ..crf import mean_field_backward

        g = np.ascontiguousarray(grad_out.numpy(), dtype=np.float32)
        grad_a, grad_w, grad_mu = mean_field_backward(ctx.tape, g, want_mu=ctx.want_mu)
        k = g.shape[1]
        grad_mu = np.zeros((k, k), np.float32) if grad_mu is None else grad_mu
        return (torch.from_numpy(grad_a), torch.tensor(grad_w[0], dtype=torch.float32),
                torch.tensor(grad_w[1], dtype=torch.float32),
                torch.from_numpy(grad_mu.astype(np.float32)), None, None)


class CRFRNN(nn.Module):
    """The dense CRF's mean field as a recurrent layer on logits, trainable end to end.

    Parameters
    ----------
    n_classes : int
        K, the channels of the logits.
    n_iter : int, default=5
        Mean-field iterations (the paper trains with 5).
    gaussian_sxy : float, default=3.0
        Spatial standard deviation of the smoothness kernel, in pixels.
    gaussian_weight : float, default=3.0
    bilateral_sxy : float, default=80.0
        Spatial standard deviation of the appearance kernel, in pixels.
    bilateral_srgb : float, default=13.0
        Colour standard deviation of the appearance kernel, in the images' units (0-255
        for 8-bit images), as ``DenseCRF`` takes it.
    bilateral_weight : float, default=10.0
    compat : "potts", (K,) or (K, K) array_like, default="potts"
        Initial label compatibility, as ``DenseCRF`` reads it (a penalty: ``"potts"`` is
        ``-I``, a vector ``-diag(v)``, a matrix is used as given).
    trainable : bool, default=True
        Make the two kernel weights and the full ``(K, K)`` compatibility matrix
        ``nn.Parameter`` s (the matrix need not stay symmetric: as in the paper, it is
        learned freely). Otherwise they are buffers.
    image_channels : int, optional
        Channels of the images the bilateral kernel reads; by default set by the first
        forward, and images with another count are refused afterwards.
    engine : {"auto", "torch", "numba"}, default="auto"
        Who runs the lattice: ``"auto"`` is numba on the CPU in float32 (faster there) and
        torch tensors anywhere else (CUDA, float64).

    Examples
    --------
    >>> import torch
    >>> from hybridseg.deep import CRFRNN
    >>> layer = CRFRNN(3, n_iter=2)
    >>> logits = torch.randn(2, 3, 8, 9, requires_grad=True)
    >>> images = torch.randint(0, 256, (2, 3, 8, 9)).float()
    >>> out = layer(logits, images)
    >>> out.shape
    torch.Size([2, 3, 8, 9])
    >>> out.sum().backward()
    >>> layer.compat.grad.shape
    torch.Size([3, 3])
    """

    _parameter_constraints = {
        "n_classes": [Interval(numbers.Integral, 1, None)],
        "n_iter": [Interval(numbers.Integral, 0, None)],
        "gaussian_sxy": [_POSITIVE],
        "bilateral_sxy": [_POSITIVE],
        "bilateral_srgb": [_POSITIVE],
        "gaussian_weight": [_FINITE],
        "bilateral_weight": [_FINITE],
        "trainable": ["boolean"],
        "image_channels": [None, Interval(numbers.Integral, 1, None)],
        "engine": [StrOptions({"auto", "torch", "numba"})],
    }

    def __init__(self, n_classes, n_iter=5,
                 gaussian_sxy=DENSE_CRF_DEFAULTS["gaussian_sxy"],
                 gaussian_weight=DENSE_CRF_DEFAULTS["gaussian_weight"],
                 bilateral_sxy=DENSE_CRF_DEFAULTS["bilateral_sxy"],
                 bilateral_srgb=DENSE_CRF_DEFAULTS["bilateral_srgb"],
                 bilateral_weight=DENSE_CRF_DEFAULTS["bilateral_weight"],
                 compat="potts", trainable=True, image_channels=None, engine="auto"):
        super().__init__()
        validate_parameter_constraints(self._parameter_constraints, {
            "n_classes": n_classes, "n_iter": n_iter, "gaussian_sxy": gaussian_sxy,
            "gaussian_weight": gaussian_weight, "bilateral_sxy": bilateral_sxy,
            "bilateral_srgb": bilateral_srgb, "bilateral_weight": bilateral_weight,
            "trainable": trainable, "image_channels": image_channels, "engine": engine,
        }, caller_name="CRFRNN")
        mu = compat_matrix(compat, int(n_classes))
        mu = -np.eye(int(n_classes)) if mu is None else mu
        self.n_classes = int(n_classes)
        self.n_iter = int(n_iter)
        self.gaussian_sxy = float(gaussian_sxy)
        self.bilateral_sxy = float(bilateral_sxy)
        self.bilateral_srgb = float(bilateral_srgb)
        self.trainable = bool(trainable)
        self.engine = engine
        self.image_channels = None if image_channels is None else int(image_channels)
        values = {
            "gaussian_weight": torch.tensor(float(gaussian_weight)),
            "bilateral_weight": torch.tensor(float(bilateral_weight)),
            "compat": torch.as_tensor(np.asarray(mu, dtype=np.float32)),
        }
        for name, value in values.items():
            if self.trainable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def extra_repr(self):
        return (f"n_classes={self.n_classes}, n_iter={self.n_iter}, "
                f"gaussian_sxy={self.gaussian_sxy}, bilateral_sxy={self.bilateral_sxy}, "
                f"bilateral_srgb={self.bilateral_srgb}, trainable={self.trainable}")

    # ------------------------------------------------------------------ checking
    def _check(self, logits, images):
        if not isinstance(logits, torch.Tensor) or not isinstance(images, torch.Tensor):
            raise TypeError("logits and images must be torch tensors")
        if logits.ndim != 4:
            raise ValueError(f"logits must be (N, K, H, W), got a {logits.ndim}-D tensor of "
                             f"shape {tuple(logits.shape)}")
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got a {images.ndim}-D tensor of "
                             f"shape {tuple(images.shape)}")
        n, k, h, w = logits.shape
        if k != self.n_classes:
            raise ValueError(f"logits have {k} channels but the layer has n_classes="
                             f"{self.n_classes}")
        if images.shape[0] != n or images.shape[2:] != logits.shape[2:]:
            raise ValueError(f"logits {tuple(logits.shape)} and images "
                             f"{tuple(images.shape)} differ in batch size or in H, W")
        if n == 0 or h == 0 or w == 0:
            raise ValueError(f"logits are empty: shape {tuple(logits.shape)}")
        if not logits.is_floating_point():
            raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
        c = images.shape[1]
        if c == 0:
            raise ValueError(f"images have no channels: shape {tuple(images.shape)}")
        if self.image_channels is not None and c != self.image_channels:
            raise ValueError(f"images have {c} channels but the layer was built for "
                             f"{self.image_channels}-channel images")
        if not torch.isfinite(logits).all():
            raise ValueError("logits hold NaN or infinite values")
        if not torch.isfinite(images).all():
            raise ValueError("images hold NaN or infinite values")

    # ------------------------------------------------------------------ forward
    def kernels(self, image, dtype):
        """The two normalised kernels of one ``(C, H, W)`` image (built once, reused by
        every iteration and channel), on features built as ``DenseCRF`` builds them."""
        from ..crf._kernels import builtin_kernels, kernel_features
        from ..crf._torch_lattice import NormalizedKernel

        h, w = image.shape[1:]
        device = image.device
        # The numba lattice reads float32 features, as DenseCRF builds them.
        numba = self.engine == "numba" or (self.engine == "auto" and device.type == "cpu"
                                           and dtype == torch.float32)
        specs = builtin_kernels(self.gaussian_sxy, 1.0, self.bilateral_sxy,
                                self.bilateral_srgb, 1.0)
        pixels = image.detach().permute(1, 2, 0)
        if numba:
            # The numba lattice takes numpy features, built as DenseCRF builds them (no
            # torch kernels launched between the mean field's passes); the smoothness
            # kernel depends on the image's size only, and is kept.
            from ..crf._meanfield import LatticeKernel, position_kernel

            pixels = pixels.cpu().numpy()
            return tuple(NormalizedKernel.from_lattice_kernel(kernel, dtype) for kernel in (
                position_kernel((h, w), self.gaussian_sxy),
                LatticeKernel(kernel_features(specs[1], pixels, (h, w), name="bilateral"))))
        return tuple(
            NormalizedKernel(kernel_features(spec, pixels, (h, w), name=name, device=device,
                                             dtype=dtype), dtype, "torch")
            for spec, name in zip(specs, ("gaussian", "bilateral")))

    def forward(self, logits, images):
        """Refined logits.

        Parameters
        ----------
        logits : (N, K, H, W) torch.Tensor
            Unary logits (the unary energy is ``-logits``), float32 or float64.
        images : (N, C, H, W) torch.Tensor
            The images, in the units of ``bilateral_srgb`` (0-255 for 8-bit images); on
            the logits' device. No gradient flows to them.

        Returns
        -------
        refined : (N, K, H, W) torch.Tensor
            Logits whose softmax over K is the mean-field marginal after ``n_iter``
            iterations (the logits themselves when ``n_iter`` is 0).
        """
        from ..crf._torch_lattice import lattice_filter

        self._check(logits, images)
        if self.image_channels is None:  # the first forward fixes the image channels
            self.image_channels = int(images.shape[1])
        if self.n_iter == 0:
            return logits
        if logits.dtype in (torch.float16, torch.bfloat16):
            # the lattice runs in float32 or float64: half logits come back as half
            return self.forward(logits.float(), images).to(logits.dtype)
        n, k, h, w = logits.shape
        dtype = logits.dtype
        wg = self.gaussian_weight.to(dtype)
        wb = self.bilateral_weight.to(dtype)
        mu_t = self.compat.to(dtype).T
        out = []
        for i in range(n):
            kg, kb = self.kernels(images[i], dtype)
            unary = logits[i].reshape(k, h * w).T                      # (HW, K)
            if kg.engine == "numba":
                z = _MeanFieldNumba.apply(unary.contiguous(), self.gaussian_weight,
                                          self.bilateral_weight, self.compat,
                                          (kg._numba, kb._numba), self.n_iter)
                out.append(z.T.reshape(k, h, w))
                continue
            z = unary
            for _ in range(self.n_iter):
                q = torch.softmax(z, dim=1)
                message = wg * lattice_filter(q, kg) + wb * lattice_filter(q, kb)
                z = unary - message @ mu_t
            out.append(z.T.reshape(k, h, w))
        return torch.stack(out)


class UnaryCRF(nn.Module):
    """A unary network's logits refined by a ``CRFRNN`` layer: the network of a fitted
    ``CRFRNNSegmenter``.

    It takes the standardised images the unary network takes and gives the layer the
    images in their own units (un-standardised with ``mean``, ``std`` and ``unit``, the
    buffers ``set_stats`` fills from the segmenter's input statistics). With ``use_crf``
    False it is the unary network alone (the first training stage). ``output`` unwraps
    the unary network's output (``CNNSegmenter``'s parameter); ``stride`` is the multiple
    its inputs are padded to.
    """

    def __init__(self, unary, crf, n_channels, output=None, stride=None):
        super().__init__()
        self.unary = unary
        self.crf = crf
        self.use_crf = True
        self.output = output
        self.stride = int(stride or getattr(unary, "stride", 1) or 1)
        self.register_buffer("mean", torch.zeros(1, n_channels, 1, 1))
        self.register_buffer("std", torch.ones(1, n_channels, 1, 1))
        self.register_buffer("unit", torch.tensor(255.0))

    def set_stats(self, mean, std, unit):
        c = self.mean.shape[1]
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(1, c, 1, 1))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(1, c, 1, 1))
        self.unit.fill_(float(unit))

    def forward(self, x):
        from ._inference import network_logits

        z = network_logits(self.unary, x, getattr(self, "output", None))
        if not self.use_crf:
            return z
        images = (x.float() * self.std + self.mean) * self.unit
        with torch.autocast(x.device.type, enabled=False):
            return self.crf(z.float(), images)
