"""DilatedNet (Yu & Koltun, 2016): a dilated front end and a context module."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_option
from ._blocks import check_dropout, odd_int, positive_int, upsample
from ._registry import register_model

torch = require_torch()
nn = torch.nn

#: The context module's dilations, layer by layer (the last layer is 1x1).
_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
#: Channels of each layer as multiples of K: the basic and the large module.
_WIDTHS = {"basic": (1, 1, 1, 1, 1, 1, 1), "large": (2, 2, 4, 8, 16, 32, 32)}


def _identity_init(conv):
    """A convolution that passes its input through: 1 at the centre tap of channel c to c
    (the first min(in, out) channels), 0 elsewhere; the paper's identity initialisation,
    without which the stacked module does not train."""
    with torch.no_grad():
        conv.weight.zero_()
        k = conv.kernel_size[0] // 2
        for c in range(min(conv.in_channels, conv.out_channels)):
            conv.weight[c, c, k, k] = 1.0
        conv.bias.zero_()


@register_model("dilatednet")
class DilatedNet(nn.Module):
    """DilatedNet: the front end of Yu & Koltun (a VGG-16 without its last two pools, conv5
    dilated by 2, fc6 a 7x7 convolution dilated by 4, fc7 1x1, fc8 1x1 to K: scores at
    stride 8) followed by the context module: 3x3 convolutions dilated at 1, 1, 2, 4, 8, 16
    and 1, each with ReLU, and a 1x1 convolution, all initialised to the identity so that
    the module starts by passing the front end's scores through; the output is upsampled
    bilinearly.

    ``context="basic"``: every layer has K channels; ``"large"``: 2K, 2K, 4K, 8K, 16K, 32K,
    32K. Faithful at ``preset="paper"``: VGG-16 (``backbone="vgg16_bn"``; its pools 4 and 5
    removed as in the paper) with fc6 and fc7 of 4096 channels, dropout 0.5 and the large
    context module: 141.2 M parameters at K = 21 (the front end's 134 M and the module's 6
    M). Simplified: the paper trains the front end first and the context module
    after it, and pads the input by reflection; both stages train together here.
    ``preset="small"``: the light backbone at output stride 8, fc layers of 128 channels
    (fc6 3x3 dilated by 4) and the basic module, 0.66 M parameters at K = 11.

    Parameters
    ----------
    in_channels, n_classes : int
    context : {"basic", "large", "none"}, default="basic"
    fc_width : int, default=128
        Channels of fc6 and fc7 (the paper's 4096).
    fc_kernel : int, default=3
        Kernel of fc6 (the paper's 7).
    dropout : float, default=0.1
    backbone : str, default="light"
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "vgg16_bn", "fc_width": 4096,
                                      "fc_kernel": 7, "dropout": 0.5, "context": "large"}}

    def __init__(self, in_channels, n_classes, context="basic", fc_width=128, fc_kernel=3,
                 dropout=0.1, backbone="light", backbone_weights=None):
        super().__init__()
        if not isinstance(context, str) or context not in ("basic", "large", "none"):
            raise ValueError(f"context must be 'basic', 'large' or 'none', got {context!r}")
        fc_width = positive_int("fc_width", fc_width)
        fc_kernel = odd_int("fc_kernel", fc_kernel)
        dropout = check_dropout(dropout)
        self.stride = 8
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 8)
        features = getattr(self.backbone, "features", None)
        if features is not None:  # VGG: the paper removes the pools past stride 8
            for i, layer in enumerate(features):
                if isinstance(layer, nn.MaxPool2d) and layer.stride == 1:
                    features[i] = nn.Identity()
        cin = self.backbone.channels[-1]
        pad = 4 * (fc_kernel // 2)
        self.frontend = nn.Sequential(
            nn.Conv2d(cin, fc_width, fc_kernel, padding=pad, dilation=4),
            nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(fc_width, n_classes, 1))
        layers = []
        if context != "none":
            c = n_classes
            for d, m in zip(_DILATIONS, _WIDTHS[context]):
                conv = nn.Conv2d(c, m * n_classes, 3, padding=d, dilation=d)
                _identity_init(conv)
                layers += [conv, nn.ReLU(inplace=True)]
                c = m * n_classes
            last = nn.Conv2d(c, n_classes, 1)
            _identity_init(last)
            layers.append(last)
        self.context = nn.Sequential(*layers)

    def forward(self, x):
        size = x.shape[-2:]
        x = self.frontend(self.backbone(x)[-1])
        return upsample(self.context(x), size)
