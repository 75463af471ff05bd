"""Feature responses and their Jacobian with respect to a parameterization's free variables."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._checks import single_image
from ..errors import ObjectiveError
from ..models.capture import Capture
from ..models.loading import Normalize, model_device, preprocessing_of
from ..optvis.objectives import Aggregation, aggregate
from ..optvis.param import ImageParam, PixelImage


def response_fn(model: nn.Module, layer: str, cap: Capture, aggregation: Aggregation = "maxpool_mean",
                position: tuple[int, int] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """`images (B, 3, H, W) in [0, 1] -> responses (B, k)` through an open :class:`Capture` of `layer`."""
    normalize = Normalize(preprocessing_of(model)).to(model_device(model))

    def fn(images: torch.Tensor) -> torch.Tensor:
        return aggregate(cap.run(normalize(images))[layer], aggregation, position=position)

    return fn


def free_variables(param: ImageParam) -> tuple[str, torch.Tensor]:
    """The one free tensor of a parameterization (`pixels`, `spectrum` or `phase`) and its name."""
    named = [(n, p) for n, p in param.named_parameters()]
    if len(named) != 1:
        raise ObjectiveError(f"{type(param).__name__} has {len(named)} parameter tensors; IFV needs exactly one")
    return named[0]


def pixel_realization(image: torch.Tensor) -> ImageParam:
    """Wrap an image `(3, H, W)` or `(1, 3, H, W)` in (0, 1) as a pixel parameterization with `sigmoid(xi) = image`."""
    x = single_image(image)
    p = PixelImage(tuple(x.shape[2:]), 1).to(x.device)
    with torch.no_grad():
        p.pixels.copy_(torch.logit(x.clamp(1e-6, 1 - 1e-6)))
    return p


def jacobian(fn: Callable[[torch.Tensor], torch.Tensor], xi: torch.Tensor, *, chunk: int = 64
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Response `v (k,)` and Jacobian `J = dv/dxi (k, n)` by batched vector-Jacobian products.

    One forward pass (`torch.func.vjp`), then `k` VJPs vmapped over the rows of the identity in chunks of `chunk`
    rows, so peak memory grows with `chunk`, not with `k`.

    Args:
        fn: maps the free variables (shape of `xi`) to the response of one realization, `(1, k)` or `(k,)`.
        xi: free variables; `n = xi.numel()`.
        chunk: VJPs per vmapped batch.
    """
    if chunk < 1:
        raise ObjectiveError(f"chunk must be >= 1; got {chunk}")
    v, vjp_fn = torch.func.vjp(lambda t: fn(t).reshape(-1), xi.detach())
    k = v.numel()
    rows = []
    batched = torch.func.vmap(vjp_fn)
    for start in range(0, k, chunk):
        eye = torch.zeros(min(chunk, k - start), k, dtype=v.dtype, device=v.device)
        eye[:, start:start + eye.shape[0]].fill_diagonal_(1.0)
        (g,) = batched(eye)
        rows.append(g.reshape(eye.shape[0], -1))
    return v.detach(), torch.cat(rows)
