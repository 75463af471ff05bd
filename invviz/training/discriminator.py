"""The one small image discriminator of invviz's adversarial losses (generator training for the priors, VFA-GAN)."""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    """A small convolutional discriminator on images in [0, 1] (any size >= 16), one score per image."""

    def __init__(self, width: int = 32, channels: int = 3) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)[:, 0]
