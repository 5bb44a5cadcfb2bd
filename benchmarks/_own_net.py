"""A user's own small network, for ``own_network.py``: in a module of its own, as a network
must be for a saved model to be read by ``hybridseg segment`` (``--python-path``)."""

import torch


class PlainNet(torch.nn.Module):
    """A strided encoder, a dilated context layer and logits at a quarter of the size."""

    def __init__(self, k):
        super().__init__()
        c = torch.nn.Conv2d
        self.backbone = torch.nn.Sequential(
            c(3, 32, 3, 2, 1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            c(32, 64, 3, 2, 1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
            c(64, 64, 3, 1, 2, dilation=2), torch.nn.BatchNorm2d(64), torch.nn.ReLU())
        self.head = c(64, k, 1)

    def forward(self, x):
        return self.head(self.backbone(x))
