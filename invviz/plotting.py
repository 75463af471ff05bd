"""Grids and figures, kept out of the algorithms."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """Tile images `(B, C, H, W)` in [0, 1] into one `uint8` array `(H', W', 3)`."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.dim() == 3:
        images = images[None]
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    b, c, h, w = images.shape
    ncol = nrow or min(b, max(1, math.ceil(math.sqrt(b))) if b > 4 else b)
    nrows = math.ceil(b / ncol)
    grid = torch.full((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), fill)
    for i in range(b):
        r, k = divmod(i, ncol)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = images[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int | None = None) -> str:
    """Save images `(B, C, H, W)` in [0, 1] as one PNG grid; returns the path."""
    from PIL import Image

    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    Image.fromarray(image_grid(images, nrow)).save(path)
    return path


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, size: float = 2.5):
    """Show images `(B, C, H, W)` in a row of matplotlib axes; returns the figure."""
    import matplotlib.pyplot as plt

    images = images.detach().float().cpu().clamp(0, 1)
    b = images.shape[0]
    fig, axes = plt.subplots(1, b, figsize=(size * b, size), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig
