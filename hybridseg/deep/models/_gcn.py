"""The Global Convolutional Network (Peng et al., 2017, "Large kernel matters")."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_option
from ._blocks import bilinear_upsampling, odd_int
from ._registry import register_model

torch = require_torch()
nn = torch.nn


class _GlobalConv(nn.Module):
    """Two branches of separable large kernels, k x 1 then 1 x k, and 1 x k then k x 1,
    summed (no batch normalisation or ReLU, as in the paper)."""

    def __init__(self, cin, cout, k):
        super().__init__()
        p = k // 2
        self.left = nn.Sequential(nn.Conv2d(cin, cout, (k, 1), padding=(p, 0)),
                                  nn.Conv2d(cout, cout, (1, k), padding=(0, p)))
        self.right = nn.Sequential(nn.Conv2d(cin, cout, (1, k), padding=(0, p)),
                                   nn.Conv2d(cout, cout, (k, 1), padding=(p, 0)))

    def forward(self, x):
        return self.left(x) + self.right(x)


class _BoundaryRefine(nn.Module):
    """A residual block on the score maps: x + conv3x3(ReLU(conv3x3(x)))."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


@register_model("gcn")
class GCN(nn.Module):
    """GCN: global convolution and boundary refinement on a backbone's four feature maps.

    Each of the backbone's maps at strides 4, 8, 16 and 32 is scored by a global
    convolutional network module (a k x 1 + 1 x k and a 1 x k + k x 1 convolution to K
    channels, summed: a k x k receptive field at the cost of 2k taps) and a boundary
    refinement block (a residual 3x3-ReLU-3x3 on the scores). From the coarsest, the scores
    are upsampled 2x by a learned transposed convolution (initialised bilinear), added to
    the next finer ones and refined again; two more upsamplings with refinement bring them
    to the input's size.

    Faithful at ``preset="paper"``: ResNet-152 (``backbone="resnet152"``), k = 15, the
    GCN and BR modules and their places. Simplified: the paper's ResNet-GCN backbone variant
    and its multi-scale testing are left out: 60.7 M parameters at K = 21.
    ``preset="small"`` (the default): the light backbone, k = 15, 0.64 M parameters at
    K = 11.

    ``stride`` is 32.

    Parameters
    ----------
    in_channels, n_classes : int
    k : int, default=15
        The global convolution's kernel size (odd).
    backbone : str, default="light"
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "resnet152"}}

    def __init__(self, in_channels, n_classes, k=15, backbone="light", backbone_weights=None):
        super().__init__()
        k = odd_int("k", k)
        self.stride = 32
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 32)
        self.gcn = nn.ModuleList(_GlobalConv(c, n_classes, k) for c in self.backbone.channels)
        self.refine = nn.ModuleList(_BoundaryRefine(n_classes) for _ in range(4))
        self.refine_fused = nn.ModuleList(_BoundaryRefine(n_classes) for _ in range(5))
        self.up = nn.ModuleList(bilinear_upsampling(n_classes, 2) for _ in range(5))

    def forward(self, x):
        size = x.shape[-2:]
        scores = [br(g(f)) for f, g, br in zip(self.backbone(x), self.gcn, self.refine)]
        x = scores[-1]
        for i, finer in enumerate(scores[-2::-1]):
            x = self.refine_fused[i](self.up[i](x)[..., :finer.shape[-2], :finer.shape[-1]]
                                     + finer)
        for i in (3, 4):
            x = self.refine_fused[i](self.up[i](x))
        if x.shape[-2:] != size:
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x
