"""Adversarial training of a segmentation network (Luc et al., 2016, "Semantic segmentation
using adversarial networks").

A discriminator learns to tell ground-truth label maps from the network's predicted class
probabilities, each shown beside its image; the segmentation network is trained with its
usual loss plus ``weight`` times the discriminator's loss on its predictions labelled as
ground truth (the "hybrid" objective of the paper, in the form that gives stronger
gradients, ``-log D(x, s(x))``). The discriminator is a training aid: it is not kept in the
fitted segmenter.
"""

from __future__ import annotations

from ._torch import require_torch

__all__ = ["Adversary", "discriminator"]


def discriminator(in_channels, n_classes, width=32):
    """A small convolutional discriminator on ``(N, C + K, H, W)`` pairs of an image and
    a class map: four 3x3 convolutions with leaky ReLU (the last three of stride 2),
    global average pooling and a linear layer to one logit per pair."""
    nn = require_torch().nn
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels + n_classes, w, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 1))


class Adversary:
    """The discriminator of one training run, its optimiser and its losses.

    Parameters
    ----------
    in_channels, n_classes : int
    weight : float
        Of the adversarial term in the segmentation network's loss.
    void : int
        Label of void pixels; there the ground-truth map shows the network's own
        (detached) prediction, so that void is no cue.
    device : torch.device
    lr : float, default=1e-4
        Of the discriminator's Adam.
    """

    def __init__(self, in_channels, n_classes, weight, void, device, lr=1e-4):
        torch = require_torch()
        self.net = discriminator(in_channels, n_classes).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.999))
        self.weight = float(weight)
        self.void = void
        self.n_classes = n_classes
        self.losses = []

    def _real(self, proba, labels):
        torch = require_torch()
        valid = labels != self.void
        onehot = torch.nn.functional.one_hot(labels.clamp(0, self.n_classes - 1),
                                             self.n_classes).permute(0, 3, 1, 2).float()
        return torch.where(valid[:, None], onehot, proba)

    def generator_loss(self, images, logits):
        """``weight`` times the discriminator's loss on the predictions as ground truth
        (the discriminator's own weights get no gradient from it)."""
        torch = require_torch()
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            proba = torch.softmax(logits, dim=1)
            out = self.net(torch.cat([images, proba], dim=1))
            return self.weight * torch.nn.functional.binary_cross_entropy_with_logits(
                out, torch.ones_like(out))
        finally:
            for p in self.net.parameters():
                p.requires_grad_(True)

    def step(self, images, logits, labels):
        """One optimisation step of the discriminator: ground-truth maps as 1, the
        network's (detached) predictions as 0."""
        torch = require_torch()
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        proba = torch.softmax(logits.detach().float(), dim=1)
        fake = self.net(torch.cat([images, proba], dim=1))
        real = self.net(torch.cat([images, self._real(proba, labels)], dim=1))
        loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.losses.append(float(loss.detach()))
        return float(loss.detach())
