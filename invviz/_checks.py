"""Input checks shared by the verbs, raising typed errors that say what was expected."""

from __future__ import annotations

import torch

from .errors import ImageSizeError


def single_image(image: object) -> torch.Tensor:
    """One image `(3, H, W)` or `(1, 3, H, W)` with values in [0, 1], returned as float `(1, 3, H, W)`."""
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ImageSizeError(f"expected one image (3, H, W) or (1, 3, H, W) with values in [0, 1]; got {got}")
    x = image if image.dim() == 4 else image[None]
    if x.shape[0] != 1:
        raise ImageSizeError(f"expected one image; got a batch of {x.shape[0]} (pass them one at a time)")
    if not x.dtype.is_floating_point:
        raise ImageSizeError(f"expected a float image in [0, 1]; got dtype {x.dtype} (divide uint8 images by 255)")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ImageSizeError(f"image values must lie in [0, 1]; got [{lo:.3g}, {hi:.3g}]")
    return x.float()
