"""U-Net (Ronneberger et al., 2015)."""

from __future__ import annotations

from .._torch import require_torch
from ._blocks import conv_bn_relu
from ._registry import register_model

torch = require_torch()
nn = torch.nn


@register_model("unet")
class UNet(nn.Module):
    """U-Net: a contracting path of double 3x3 convolutions and 2x2 max pools, and an
    expanding path of 2x2 transposed convolutions, each joined to the contracting feature
    map of the same size (skip connections), then a 1x1 convolution to the class logits.

    Convolutions are padded (the output has the input's size, unlike the paper's valid
    convolutions) and followed by batch normalisation.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    widths : sequence of int, default=(16, 32, 64, 128)
        Channels at each level, top to bottom; ``len(widths) - 1`` pools, so the stride is
        ``2 ** (len(widths) - 1)``. The default has about 0.48 M parameters.
    dropout : float, default=0.0
        Dropout before the last convolution.
    """

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), dropout=0.0):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must hold at least two positive channel counts, got "
                             f"{widths}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.stride = 2 ** (len(widths) - 1)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(nn.Sequential(conv_bn_relu(cin, w), conv_bn_relu(w, w)))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, stride=2))
            self.merge.append(nn.Sequential(conv_bn_relu(2 * w, w), conv_bn_relu(w, w)))
        self.dropout = nn.Dropout2d(float(dropout))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(self.dropout(x))
