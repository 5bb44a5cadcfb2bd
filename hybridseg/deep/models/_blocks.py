"""Building blocks shared by the architectures of the zoo, and checks of their options.

Each family's file (``_unet.py``, ``_fcn.py``, ...) builds its network from these; a new
architecture should reuse them (and add its own shared blocks here: backbones, decoders,
heads) rather than define another conv-BN-ReLU.
"""

from __future__ import annotations

import numbers

from .._torch import require_torch

torch = require_torch()
nn = torch.nn


def conv_bn_relu(cin, cout, kernel_size=3, stride=1, dilation=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def positive_ints(option, values, count=None, at_least=1):
    """``values`` as a tuple of positive ints, or a ``ValueError`` naming ``option``."""
    how_many = f"{count}" if count is not None else f"at least {at_least}"
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{option} must hold {how_many} positive integers, got "
                         f"{values!r}") from None
    if (len(values) < at_least or (count is not None and len(values) != count)
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                   for v in values)):
        raise ValueError(f"{option} must hold {how_many} positive integers, got {values!r}")
    return tuple(int(v) for v in values)


def positive_int(option, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{option} must be a positive integer, got {value!r}")
    return int(value)


def odd_int(option, value):
    """A positive odd int (a kernel size with a centre), or a ``ValueError`` naming
    ``option``."""
    value = positive_int(option, value)
    if value % 2 == 0:
        raise ValueError(f"{option} must be odd, got {value}")
    return value


def check_dropout(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


def upsample(x, size):
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def bilinear_kernel(size):
    """The ``size x size`` kernel of bilinear interpolation (FCN's ``upsample_filt``).

    A transposed convolution of stride ``f`` with this kernel of size ``2 f`` and padding
    ``f // 2`` is ``F.interpolate(..., scale_factor=f, mode="bilinear")`` away from the
    border.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    return taps[:, None] * taps[None, :]


def bilinear_upsampling(channels, factor):
    """A learned ``factor``-times upsampling (``nn.ConvTranspose2d``), initialised bilinear.

    Each channel is interpolated on its own at initialisation (the off-diagonal weights are
    zero); the output has exactly ``factor`` times the input's size.
    """
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                            bias=False)
    with torch.no_grad():
        up.weight.zero_()
        kernel = bilinear_kernel(2 * factor)
        for c in range(channels):
            up.weight[c, c] = kernel
    return up


class Residual(nn.Module):
    """A basic residual block: two 3x3 conv-BN (the first strided or both dilated), a 1x1
    projection on the shortcut where the shape changes, ReLU after the sum."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(cin, cout, stride=stride, dilation=dilation),
            nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def residual_stage(cin, cout, blocks, stride=1, dilation=1):
    return nn.Sequential(Residual(cin, cout, stride, dilation),
                         *(Residual(cout, cout, 1, dilation) for _ in range(blocks - 1)))


def separable(cin, cout, dilation=1):
    """Depthwise-separable 3x3 convolution: depthwise (dilated) conv-BN-ReLU, then
    pointwise 1x1 conv-BN-ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def pooled_branch(cin, cout, bins):
    """Adaptive average pooling to ``bins x bins`` and a 1x1 conv-ReLU. Batch normalisation
    follows the conv except at one bin: a 1x1 map has a single value per channel at batch
    size 1, which batch normalisation cannot train on, so that branch has a bias instead."""
    if bins == 1:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1),
                             nn.ReLU(inplace=True))
    return nn.Sequential(nn.AdaptiveAvgPool2d(bins), conv_bn_relu(cin, cout, kernel_size=1))
