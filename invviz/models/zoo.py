"""Small networks that train on a CPU in minutes, for tests, tutorials and benchmarks: an ordinary classifier to
stand in for "the user's pretrained network" where no pretrained weights can be downloaded."""

from __future__ import annotations

import torch
from torch import nn

from .loading import Preprocessing

# Fashion-MNIST training-set pixel mean and standard deviation (the usual normalization constants)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, a projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class FashionResNet(nn.Module):
    """A small ResNet for 28 x 28 grey images: stem, three stages (28, 14, 7 px), global average pool, linear head.

    Layer names: `stem`, `layer1` (w x 28 x 28), `layer2` (2w x 14 x 14), `layer3` (4w x 7 x 7, the last spatial
    stage), `global_pool` (4w), `fc` (the logits). It carries its preprocessing (`invviz_preprocessing`): one
    input channel, Fashion-MNIST's mean and standard deviation.

    Example:
        >>> net = FashionResNet(width=8)
        >>> net(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.layer1 = BasicBlock(w, w)
        self.layer2 = BasicBlock(w, 2 * w, stride=2)
        self.layer3 = BasicBlock(2 * w, 4 * w, stride=2)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * w, classes)
        self.invviz_preprocessing = Preprocessing(mean=FASHION_MEAN, std=FASHION_STD, input_size=(1, 28, 28),
                                                  source="Fashion-MNIST training-set mean/std")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.global_pool(x))


class PlantedConcepts(nn.Module):
    """A network whose layer `mix` is known to be sparse non-negative mixtures of `k` planted directions: the
    oracle for concept learning.

    Images are tiles of `patch x patch` pixels; `detect` (a convolution with stride `patch` whose filters are `k`
    orthonormal patterns, then a ReLU) reads each tile's amount `a_i >= 0` of every pattern, and `mix` (a 1x1
    convolution whose weights are the planted `directions (k, channels)`, non-negative, unit norm) writes
    `sum_i a_i d_i`. :meth:`images` paints tiles with one or two patterns each, so every activation vector of `mix`
    is a mixture of at most two planted directions. `head` pools and maps to `k` class scores.
    """

    def __init__(self, k: int = 6, channels: int = 16, patch: int = 4, seed: int = 0) -> None:
        super().__init__()
        if k > 3 * patch * patch:
            raise ValueError(f"k={k} patterns need at most 3 * patch^2 = {3 * patch * patch}")
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(3 * patch * patch, k, generator=gen, dtype=torch.float64))
        self.patterns = q.T.float().reshape(k, 3, patch, patch)  # orthonormal (k, 3, p, p)
        d = torch.rand(k, channels, generator=gen) ** 2  # non-negative, fairly distinct
        self.directions = d / d.norm(dim=1, keepdim=True)
        self.k, self.patch, self.amplitude = k, patch, 0.12
        self.detect = nn.Conv2d(3, k, patch, stride=patch)
        self.relu = nn.ReLU()
        self.mix = nn.Conv2d(k, channels, 1, bias=False)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, k))
        with torch.no_grad():
            self.detect.weight.copy_(self.patterns / self.amplitude)
            self.detect.bias.copy_(-(self.patterns * 0.5).sum(dim=(1, 2, 3)) / self.amplitude)
            self.mix.weight.copy_(self.directions.T[:, :, None, None])
            self.head[2].weight.copy_(self.directions)
            self.head[2].bias.zero_()
        self.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 32, 32),
                                                  source="PlantedConcepts")
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(self.relu(self.detect(x))))

    def images(self, n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` images `(n, 3, size, size)` in [0, 1] and their tiles' amounts `(n, k, size / patch, size / patch)`:
        each tile holds one pattern (or two, one time in three) at an amount in [0.3, 1]."""
        gen = torch.Generator().manual_seed(seed)
        t = size // self.patch
        amounts = torch.zeros(n, self.k, t, t)
        first = torch.randint(self.k, (n, t, t), generator=gen)
        second = torch.randint(self.k, (n, t, t), generator=gen)
        both = torch.rand(n, t, t, generator=gen) < 1 / 3
        amounts.scatter_(1, first[:, None], 0.3 + 0.7 * torch.rand(n, 1, t, t, generator=gen))
        extra = torch.zeros_like(amounts).scatter_(1, second[:, None], 0.3 + 0.7 * torch.rand(n, 1, t, t, generator=gen))
        amounts = torch.where(both[:, None] & (second != first)[:, None], amounts + extra, amounts)
        tiles = torch.einsum("nkhw,kcij->nchiwj", amounts, self.patterns)  # (n, 3, t, p, t, p)
        x = 0.5 + self.amplitude * tiles.reshape(n, 3, t * self.patch, t * self.patch)
        return x.clamp(0, 1), amounts


__all__ = ["PlantedConcepts", "FashionResNet", "BasicBlock", "FASHION_MEAN", "FASHION_STD"]
