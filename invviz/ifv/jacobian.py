"""Feature responses and their Jacobian with respect to a parameterization's free variables."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ImageSizeError, ObjectiveError
from ..models.probe import Probe, check_images
from ..optvis.param import ImageParam, PixelImage
from .objective import IFVObjective, aggregate_as


def response_fn(probe: Probe, layer: str, form: IFVObjective = IFVObjective()
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """`images (B, C, H, W) in [0, 1] -> responses (B, k)` through an open :class:`Probe` of `layer`, aggregated as
    `form` says."""
    form = IFVObjective.checked(form, "form")

    def fn(images: torch.Tensor) -> torch.Tensor:
        return aggregate_as(probe(images)[layer], form)

    return fn


def free_variables(param: ImageParam) -> tuple[str, torch.Tensor]:
    """The one free tensor of a parameterization (`pixels`, `spectrum` or `phase`) and its name."""
    named = [(n, p) for n, p in param.named_parameters()]
    if len(named) != 1:
        raise ObjectiveError(f"{type(param).__name__} has {len(named)} parameter tensors; IFV needs exactly one")
    return named[0]


def pixel_realization(image: torch.Tensor) -> ImageParam:
    """Wrap one image `(C, H, W)` or `(1, C, H, W)` in (0, 1) as a pixel parameterization with `sigmoid(xi) = image`
    (in the image's dtype, so a float64 image gives float64 free variables)."""
    x = check_images(image, channels=None, what="the realization image")
    if x.shape[0] != 1:
        raise ImageSizeError(f"recover one realization at a time; got a batch of {x.shape[0]} images")
    p = PixelImage(tuple(x.shape[2:]), 1, channels=x.shape[1]).to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        p.pixels.copy_(torch.logit(x.clamp(1e-6, 1 - 1e-6)))
    return p


JACOBIAN_METHODS = ("auto", "vmap", "loop")


def jacobian(fn: Callable[[torch.Tensor], torch.Tensor], xi: torch.Tensor, *, chunk: int = 64, method: str = "auto"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Response `v (k,)` and Jacobian `J = dv/dxi (k, n)` by vector-Jacobian products.

    One forward pass (`torch.func.vjp`), then the `k` VJPs of the rows of the identity: `"vmap"` batches them in
    chunks of `chunk` rows (peak memory grows with `chunk`, not with `k`); `"loop"` runs them one at a time through
    the same retained graph. `"auto"` (default) batches on accelerators and loops on CPU, where batching is slower
    (`benchmarks/bench_jacobian.py` measures both). Both give the same Jacobian.

    Args:
        fn: maps the free variables (shape of `xi`) to the response of one realization, `(1, k)` or `(k,)`.
        xi: free variables; `n = xi.numel()`.
        chunk: VJPs per vmapped batch.
        method: `"auto"`, `"vmap"` or `"loop"`.
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ObjectiveError(f"chunk must be an int >= 1; got {chunk!r}")
    if method not in JACOBIAN_METHODS:
        raise ObjectiveError(f"unknown Jacobian method {method!r}; use one of {JACOBIAN_METHODS}")
    if method == "auto":
        method = "loop" if xi.device.type == "cpu" else "vmap"
    v, vjp_fn = torch.func.vjp(lambda t: fn(t).reshape(-1), xi.detach())
    k = v.numel()
    if method == "loop":
        eye = torch.eye(k, dtype=v.dtype, device=v.device)
        return v.detach(), torch.stack([vjp_fn(eye[i])[0].reshape(-1) for i in range(k)])
    rows = []
    batched = torch.func.vmap(vjp_fn)
    for start in range(0, k, chunk):
        eye = torch.zeros(min(chunk, k - start), k, dtype=v.dtype, device=v.device)
        eye[:, start:start + eye.shape[0]].fill_diagonal_(1.0)
        (g,) = batched(eye)
        rows.append(g.reshape(eye.shape[0], -1))
    return v.detach(), torch.cat(rows)
