"""EncNet (Zhang et al., 2018): the context encoding module."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_option
from ._blocks import check_dropout, conv_bn_relu, positive_int, upsample
from ._registry import register_model

torch = require_torch()
nn = torch.nn


class _Encoding(nn.Module):
    """The encoding layer: ``n_codes`` learned codewords ``d_k`` and smoothing factors
    ``s_k``; each feature ``x_i`` is assigned softly, ``a_ik = softmax_k(-s_k ||x_i -
    d_k||^2)``, and ``e_k = sum_i a_ik (x_i - d_k)``; returns ``(N, n_codes, C)``."""

    def __init__(self, channels, n_codes):
        super().__init__()
        std = 1.0 / (n_codes * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(n_codes, channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(n_codes).uniform_(-1, 0))

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)                                   # (N, HW, C)
        d = self.codewords                                                 # (K, C)
        # ||x - d||^2 expanded, so that no (N, HW, K, C) residual is ever held
        dist = (x.pow(2).sum(-1, keepdim=True) - 2 * x @ d.T + d.pow(2).sum(-1))
        a = torch.softmax(self.scale * dist, dim=2)                        # (N, HW, K)
        return a.transpose(1, 2) @ x - a.sum(1)[..., None] * d             # (N, K, C)


@register_model("encnet")
class EncNet(nn.Module):
    """EncNet: a dilated backbone, a context encoding module that rescales the channels by
    the scene's context, and an auxiliary semantic-encoding head.

    On the backbone's last map (output stride 8), a 1x1 conv-BN-ReLU reduces the channels;
    the encoding layer aggregates the features against ``n_codes`` learned codewords, batch
    normalisation, ReLU and the mean over the codewords give the encoded context ``e``; a
    fully connected layer and a sigmoid turn ``e`` into a scaling factor per channel, which
    multiplies the features (channel-wise attention). A 3x3 conv-BN-ReLU, dropout and a
    1x1 convolution give the scores, upsampled bilinearly. The semantic-encoding head, a
    fully connected layer from ``e`` to the K classes, predicts which classes the image
    holds; after each forward pass its logits are kept as ``se_logits``, for the
    semantic-encoding loss (binary cross-entropy against the classes present) that a
    training loop may add.

    Faithful at ``preset="paper"``: ResNet-101 (``backbone="resnet101"``) dilated to output
    stride 8, 512 channels and 32 codewords: 46.2 M parameters at K = 21. Simplified: the
    paper's auxiliary FCN head on stage 3 is left out; ``CNNSegmenter`` does not yet add
    the semantic-encoding loss (``se_logits`` is there for it). ``preset="small"`` (the
    default): the light backbone, 64 channels, 16 codewords, 0.54 M parameters at K = 11.

    ``stride`` is 8.

    Parameters
    ----------
    in_channels, n_classes : int
    width : int, default=64
        (The paper's 512.)
    n_codes : int, default=16
        (The paper's 32.)
    dropout : float, default=0.1
    backbone : str, default="light"
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "resnet101", "width": 512,
                                      "n_codes": 32}}

    def __init__(self, in_channels, n_classes, width=64, n_codes=16, dropout=0.1,
                 backbone="light", backbone_weights=None):
        super().__init__()
        width = positive_int("width", width)
        n_codes = positive_int("n_codes", n_codes)
        dropout = check_dropout(dropout)
        self.stride = 8
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 8)
        self.reduce = conv_bn_relu(self.backbone.channels[-1], width, kernel_size=1)
        self.encoding = _Encoding(width, n_codes)
        self.encoding_norm = nn.Sequential(nn.BatchNorm1d(n_codes), nn.ReLU(inplace=True))
        self.attention = nn.Sequential(nn.Linear(width, width), nn.Sigmoid())
        self.se_head = nn.Linear(width, n_classes)
        self.head = nn.Sequential(conv_bn_relu(width, width), nn.Dropout2d(dropout),
                                  nn.Conv2d(width, n_classes, 1))
        self.se_logits = None

    def forward(self, x):
        size = x.shape[-2:]
        x = self.reduce(self.backbone(x)[-1])
        e = self.encoding_norm(self.encoding(x)).mean(1)            # (N, C)
        x = x * self.attention(e)[:, :, None, None]
        self.se_logits = self.se_head(e)
        return upsample(self.head(x), size)
