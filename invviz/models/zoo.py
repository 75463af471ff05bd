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


__all__ = ["FashionResNet", "BasicBlock", "FASHION_MEAN", "FASHION_STD"]
