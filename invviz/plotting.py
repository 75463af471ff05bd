"""Grids and figures, kept out of the algorithms."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from .errors import ImageSizeError


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, fill: float = 1.0,
               alpha: torch.Tensor | None = None) -> np.ndarray:
    """Tile images `(B, C, H, W)` in [0, 1] into one `uint8` array `(H', W', 3)` (`(H', W', 4)` with `alpha`
    `(B, 1, H, W)` in [0, 1] as transparency, e.g. :attr:`RenderResult.importance`)."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.dim() == 3:
        images = images[None]
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if alpha is not None:
        a = alpha.detach().float().cpu().clamp(0, 1)
        if a.dim() == 3:
            a = a[None]
        if a.shape[0] != images.shape[0] or a.shape[2:] != images.shape[2:]:
            raise ImageSizeError(f"alpha {tuple(a.shape)} does not fit images {tuple(images.shape)}")
        images = torch.cat([images, a[:, :1]], 1)
    b, c, h, w = images.shape
    ncol = nrow or min(b, max(1, math.ceil(math.sqrt(b))) if b > 4 else b)
    nrows = math.ceil(b / ncol)
    grid = torch.full((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), fill)
    for i in range(b):
        r, k = divmod(i, ncol)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = images[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int | None = None,
              alpha: torch.Tensor | None = None) -> str:
    """Save images `(B, C, H, W)` in [0, 1] as one PNG grid, atomically (a failed write keeps the previous file);
    returns the path."""
    from .io import save_image

    return save_image(image_grid(images, nrow, alpha=alpha), path)


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, size: float = 2.5,
                alpha: torch.Tensor | None = None, ncol: int = 8):
    """Show images `(B, C, H, W)` in rows of at most `ncol` matplotlib axes (with `alpha` `(B, 1, H, W)` as
    transparency over a checkerboard); returns the figure."""
    import matplotlib.pyplot as plt

    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    b = images.shape[0]
    cols = min(b, ncol)
    rows = math.ceil(b / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[b:]:
        ax.set_axis_off()
    for i, ax in enumerate(axes[:b]):
        img = images[i].permute(1, 2, 0).numpy()
        if alpha is not None:
            h, w = img.shape[:2]
            yy, xx = np.mgrid[:h, :w]
            checker = (((yy // 8) + (xx // 8)) % 2 * 0.2 + 0.7)[..., None]
            a = alpha[i, 0].detach().float().cpu().clamp(0, 1).numpy()[..., None]
            img = a * img + (1 - a) * checker
        ax.imshow(img)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig
