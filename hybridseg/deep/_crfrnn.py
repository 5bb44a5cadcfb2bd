"""CRFRNN: the dense CRF's mean-field iterations as a differentiable torch layer
(Zheng et al., "Conditional Random Fields as Recurrent Neural Networks", ICCV 2015).

The model is ``DenseCRF``'s, number for number: a Gaussian kernel on pixel positions and a
bilateral kernel on positions and colours, with pydensecrf's symmetric normalisation, and
parallel mean-field updates ``Q <- softmax(logits - (w_g K_g Q + w_b K_b Q) mu^T)``,
``mu = -I`` for Potts. The mean field is the dense CRF's own engine
(``hybridseg.crf.mean_field_forward``: numba on the CPU in float32, with its exact
backward; the torch lattice elsewhere), on the kernels ``hybridseg.crf.dense_kernels``
builds: the appearance lattice per image, the smoothness lattice once per image size.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..crf import DENSE_CRF_DEFAULTS, compat_matrix, dense_kernels, mean_field_forward
from ..utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from ._torch import require_torch

torch = require_torch()
nn = torch.nn

__all__ = ["CRFRNN", "UnaryCRF"]

_POSITIVE = Interval(numbers.Real, 0, np.inf, closed="neither")
# Kernel weights: finite, and small enough that messages stay finite in float32.
_FINITE = Interval(numbers.Real, -1e6, 1e6)


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
        for name, x in (("logits", logits), ("images", images)):
            # a finite sum proves every entry finite (NaN and inf propagate) in one pass
            # without a mask; only a non-finite sum (or an overflow) looks at each entry
            if x.is_floating_point() and not (torch.isfinite(x.sum())
                                              or torch.isfinite(x).all()):
                raise ValueError(f"{name} hold NaN or infinite values")

    # ------------------------------------------------------------------ forward
    def kernels(self, image, dtype):
        """The two normalised kernels of one ``(C, H, W)`` image (built once, reused by
        every iteration and channel), as ``DenseCRF`` builds them
        (``hybridseg.crf.dense_kernels``)."""
        return dense_kernels(image.detach().permute(1, 2, 0), gaussian_sxy=self.gaussian_sxy,
                             bilateral_sxy=self.bilateral_sxy,
                             bilateral_srgb=self.bilateral_srgb, engine=self.engine,
                             dtype=dtype)

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
        weights = torch.stack([self.gaussian_weight, self.bilateral_weight]).to(dtype)
        mu = self.compat.to(dtype)
        out = []
        for i in range(n):
            unary = logits[i].reshape(k, h * w).T                      # (HW, K)
            z = mean_field_forward(unary, self.kernels(images[i], dtype),
                                   weights, mu, self.n_iter, output="logits")
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
