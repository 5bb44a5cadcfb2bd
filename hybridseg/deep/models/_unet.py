"""U-Net (Ronneberger et al., 2015)."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_of as _backbone
from ._backbones import backbone_option
from ._blocks import conv_bn_relu, upsample
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
    widths : sequence of int, optional
        By default ``(16, 32, 64, 128)``: channels at each level, top to bottom;
        ``len(widths) - 1`` pools, so the stride is ``2 ** (len(widths) - 1)``. The default
        has about 0.48 M parameters.
    dropout : float, default=0.0
        Dropout before the last convolution.
    backbone : str, optional
        A backbone of ``build_backbone`` (``"resnet50"``, ``"mobilenet_v3_large"``,
        ``"timm:<name>"``, ...) in place of the small built-in encoder: the expanding path
        joins its maps at strides 16, 8 and 4 (``widths`` then gives the decoder's channels
        at those strides and at 2 and 1, five values, default ``(128, 64, 32, 16, 16)``),
        as smp's Unet on an encoder does.
    backbone_weights : str or path-like, optional
        The backbone's pretrained weights: a checkpoint path or ``"imagenet"``
        (``build_backbone``'s ``weights``).
    """

    #: The paper's five levels of 64-1024 channels (31.0 M parameters at K = 2).
    PRESETS = {"small": {}, "paper": {"widths": (64, 128, 256, 512, 1024)}}

    def __init__(self, in_channels, n_classes, widths=None, dropout=0.0, backbone=None,
                 backbone_weights=None):
        super().__init__()
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 32)
        if self.backbone is not None:
            self._encoder_decoder(n_classes, widths or (128, 64, 32, 16, 16), dropout)
            return
        widths = [int(w) for w in (widths or (16, 32, 64, 128))]
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

    def _encoder_decoder(self, n_classes, widths, dropout):
        """The expanding path on a backbone: at strides 16, 8 and 4 the upsampled map is
        joined to the backbone's map of that stride, then two more upsamplings to the
        input's size; each step a bilinear 2x and two 3x3 conv-BN-ReLU."""
        from ._blocks import positive_ints

        widths = positive_ints("widths", widths, count=5)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.stride = 32
        skips = (*self.backbone.channels[2::-1], 0, 0)
        cin = self.backbone.channels[-1]
        self.merge = nn.ModuleList()
        for skip, w in zip(skips, widths):
            self.merge.append(nn.Sequential(conv_bn_relu(cin + skip, w), conv_bn_relu(w, w)))
            cin = w
        self.dropout = nn.Dropout2d(float(dropout))
        self.head = nn.Conv2d(widths[-1], n_classes, 1)

    def _forward_on_backbone(self, x):
        size = x.shape[-2:]
        features = self.backbone(x)
        skips = features[2::-1]
        x = features[-1]
        for i, merge in enumerate(self.merge):
            if i < len(skips):
                x = torch.cat([upsample(x, skips[i].shape[-2:]), skips[i]], dim=1)
            else:
                target = size if i == len(self.merge) - 1 else (x.shape[-2] * 2,
                                                               x.shape[-1] * 2)
                x = upsample(x, target)
            x = merge(x)
        return self.head(self.dropout(x))

    def forward(self, x):
        if _backbone(self) is not None:
            return self._forward_on_backbone(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(self.dropout(x))
