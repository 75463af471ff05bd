"""Streaming passes over a dataset: image batches from any source, and the top examples of many scores kept in
bounded memory (with crops around each example's strongest position), mergeable across processes.

The atlas (a unit's top examples) and concepts (a concept's top examples and where in them it is) both use these.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError

ITEM = 1_000_000  # an example's id is batch index * ITEM + its place in the batch: stable over processes


def image_batches(data: Any, size: int, channels: int, *, batch: int = 16) -> Iterator[tuple[int, torch.Tensor]]:
    """`(batch index, images (B, C, size, size) in [0, 1])` from `data`: `"photos"` (the photos bundled with the
    installed packages), an image folder (a path), a tensor `(N, C, H, W)` in [0, 1], a Dataset of images, or a
    DataLoader / iterable of image batches (or `(images, labels)` pairs). Images of another size are resized."""
    from .fashion import ImageFiles
    from .photos import load_photo, photo_paths

    if isinstance(data, str) and data == "photos":
        names = sorted(photo_paths())
        images = torch.stack([load_photo(n, size) for n in names]) if names else torch.zeros(0, 3, size, size)
        batches: Iterable[Any] = [images[i:i + batch] for i in range(0, len(images), batch)]
    elif isinstance(data, (str, os.PathLike)):
        batches = torch.utils.data.DataLoader(ImageFiles(data, size, channels), batch_size=batch, shuffle=False)
    elif isinstance(data, torch.Tensor):
        if data.dim() != 4:
            raise DataError(f"a tensor of images must be (N, C, H, W) in [0, 1]; got shape {tuple(data.shape)}")
        batches = [data[i:i + batch] for i in range(0, len(data), batch)]
    elif isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        batches = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False)
    elif isinstance(data, Iterable):
        batches = data
    else:
        raise DataError(f"data must be 'photos', an image folder, a tensor (N, C, H, W), a Dataset or a DataLoader;"
                        f" got {type(data).__name__}")
    for i, item in enumerate(batches):
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.dtype.is_floating_point:
            raise DataError("data must give float image batches (B, C, H, W) in [0, 1] (or (images, labels)); got"
                            f" {type(x).__name__} {tuple(x.shape) if isinstance(x, torch.Tensor) else ''}")
        if x.shape[0] == 0:
            continue
        if tuple(x.shape[2:]) != (size, size):
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        yield i, x.clamp(0, 1)


def peak_boxes(pos: torch.Tensor, h: int, w: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Centres `(ys, xs)` in pixels of square boxes of half-side `half` (a quarter of the shorter image side) around
    feature positions `pos` (flat indices into an `h x w` map) of `height x width` images, clamped inside."""
    half = max(1, min(height, width) // 4)
    ys = ((pos // w).float() + 0.5) * height / h
    xs = ((pos % w).float() + 0.5) * width / w
    return ys.clamp(half, height - half).long(), xs.clamp(half, width - half).long(), half


def peak_crops(x: torch.Tensor, pos: torch.Tensor, h: int, w: int, side: int, maps: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Square crops of `x (B, C, H, W)` centred on positions `pos (B, U)` of an `h x w` feature map, resized to
    `side`: uint8 `(B, U, 3, side, side)`; with `maps (B, U, h, w)`, the same window of each map upsampled to the
    image and cropped alike, float `(B, U, side, side)` (where in the crop the score is)."""
    b, _, height, width = x.shape
    ys, xs, half = peak_boxes(pos, h, w, height, width)
    out = torch.empty(b, pos.shape[1], x.shape[1], side, side, dtype=torch.uint8)
    heat = None if maps is None else torch.empty(b, pos.shape[1], side, side)
    up = None if maps is None else F.interpolate(maps.float(), size=(height, width), mode="bilinear",
                                                 align_corners=False)
    for i in range(b):
        for j in range(pos.shape[1]):
            cy, cx = int(ys[i, j]), int(xs[i, j])
            box = (slice(cy - half, cy + half), slice(cx - half, cx + half))
            patch = F.interpolate(x[i:i + 1, :, box[0], box[1]], size=(side, side), mode="bilinear", antialias=True,
                                  align_corners=False)
            out[i, j] = (patch[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            if heat is not None:
                heat[i, j] = F.interpolate(up[i:i + 1, j:j + 1, box[0], box[1]], size=(side, side), mode="bilinear",
                                           align_corners=False)[0, 0]
    if out.shape[2] == 1:
        out = out.expand(-1, -1, 3, -1, -1).contiguous()
    return out, heat


def merge_top(best: dict, key: str, score: torch.Tensor, ids: torch.Tensor, k: int, *extra: torch.Tensor) -> None:
    """Keep in `best[key]` the `k` highest scores per row `(U, n)` (ties: the smaller id), with their ids and the
    rows of each `extra (U, n, ...)` tensor. A total order, so merging the parts of several processes in any order
    gives the same result as one process."""
    if key in best:
        old = best[key]
        score, ids = torch.cat([old[0], score], 1), torch.cat([old[1], ids], 1)
        extra = tuple(torch.cat([o, e], 1) for o, e in zip(old[2:], extra))
    order = torch.from_numpy(np.lexsort((ids.numpy(), -score.numpy()), axis=1))[:, :k]
    rows = torch.arange(score.shape[0])[:, None]
    best[key] = (score.gather(1, order), ids.gather(1, order), *(e[rows, order] for e in extra))


__all__ = ["image_batches", "peak_boxes", "peak_crops", "merge_top", "ITEM"]
