"""Realizations good enough to invert: Adam then L-BFGS on Grad-IFV's aggregated direction objective (Reinbold &
Westermann 2020), no random transforms, with the final gradient norm of every image reported; and re-optimization
for the evaluation."""

from __future__ import annotations

import copy
import dataclasses
import functools

import torch
from torch import nn

from ..errors import ObjectiveError
from ..metrics import ssim
from ..models.probe import Probe, as_probe, image_size
from ..optvis.param import ImageParam, make_param
from ..optvis.render import render
from ..validate import check_learning_rate
from .objective import IFVObjective, aggregated_direction


@dataclasses.dataclass
class Realization:
    """A batch of realizations, one target per batch element.

    Attributes:
        param: the parameterization `(B, ...)` after optimization; `param.select(i)` is element `i` alone.
        images: `(B, 3, H, W)` in (0, 1).
        targets: the unit targets `(B, k)`.
        grad_norm: `|d s / d xi|` per image at the end `(B,)`.
        grad_norm_adam: the same after the Adam phase, before L-BFGS `(B,)`.
        objective: `s(v, theta)` per image at the end `(B,)`.
        seconds: wall time of the optimization.
    """

    param: ImageParam
    images: torch.Tensor
    targets: torch.Tensor
    grad_norm: torch.Tensor
    grad_norm_adam: torch.Tensor
    objective: torch.Tensor
    seconds: float

    def element(self, index: int) -> ImageParam:
        return self.param.select(index)


def objective_gradient(model: nn.Module | Probe, layer: str, param: ImageParam, targets: torch.Tensor,
                       form: IFVObjective = IFVObjective()) -> tuple[torch.Tensor, torch.Tensor]:
    """Objective values `(B,)` and the norm of their gradient with respect to each image's free variables `(B,)`."""
    obj = aggregated_direction(layer, targets, form)
    with as_probe(model, [layer]) as probe:
        params = list(param.parameters())
        vals = obj(probe(param()))
        grads = torch.autograd.grad(vals.sum(), params)
    norm = torch.stack([g.flatten(1).norm(dim=1) ** 2 for g in grads]).sum(0).sqrt()
    return vals.detach(), norm.detach()


def realize(model: nn.Module | Probe, layer: str, targets: torch.Tensor, *, form: IFVObjective = IFVObjective(),
            param: str | ImageParam = "pixel", size: int = 128, adam_steps: int = 800, lbfgs_steps: int = 300,
            lr: float = 0.05, seed: int = 0, progress: bool = False) -> Realization:
    """Optimize one image per row of `targets (B, k)` for Grad-IFV's aggregated direction objective, then fine-tune
    with L-BFGS.

    No random transforms (an optimum of the transformed objective is not an optimum of the plain one, and IFV needs
    the gradient to vanish). Batch elements are independent: the summed objective is separable.

    `param` may be an :class:`ImageParam` that is already optimized: with `adam_steps=0` its optimization goes on
    with `lbfgs_steps` more L-BFGS steps (a fresh curvature history), e.g. to refine cached realizations.
    `form` is the objective's cosine power and aggregation (:class:`~invviz.ifv.IFVObjective`).
    """
    base = as_probe(model)
    form = IFVObjective.checked(form, "form")
    try:
        targets = torch.as_tensor(targets, dtype=torch.float32)
    except (TypeError, ValueError):
        raise ObjectiveError(f"targets must be a tensor (k,) or (B, k); got {type(targets).__name__}") from None
    if targets.dim() == 1:
        targets = targets[None]
    if targets.dim() != 2:
        raise ObjectiveError(f"targets must be (k,) or (B, k); got shape {tuple(targets.shape)}")
    for name, n in (("adam_steps", adam_steps), ("lbfgs_steps", lbfgs_steps)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ObjectiveError(f"{name} must be an int >= 0; got {n!r}")
    if adam_steps + lbfgs_steps < 1:
        raise ObjectiveError("need at least one step of Adam or L-BFGS; got adam_steps=0, lbfgs_steps=0")
    lr = check_learning_rate(lr)
    b = targets.shape[0]
    rng = torch.Generator().manual_seed(seed)
    channels = base.reading([layer]).channels_in  # checks the layer name, knows the input channels
    p = make_param(param, image_size(size), b, rng, channels=channels).to(base.device)
    obj = aggregated_direction(layer, targets, form)
    grad = functools.partial(objective_gradient, base, layer, p, targets, form)
    seconds = 0.0
    if adam_steps:
        seconds += render(base, obj, p, transforms=None, steps=adam_steps, lr=lr, rng=rng,
                          progress=progress).seconds
    _, norm_adam = grad()
    if lbfgs_steps:
        lbfgs = functools.partial(torch.optim.LBFGS, lr=1.0, max_iter=1, history_size=20,
                                  line_search_fn="strong_wolfe")
        second = render(base, obj, p, transforms=None, steps=lbfgs_steps, optimizer=lbfgs, progress=progress)
        seconds += second.seconds
    values, norm = grad()
    with torch.no_grad():
        images = p().detach().cpu()
    return Realization(param=p, images=images, targets=targets, grad_norm=norm.cpu(), grad_norm_adam=norm_adam.cpu(),
                       objective=values.cpu(), seconds=seconds)


def reoptimize(model: nn.Module | Probe, layer: str, param: ImageParam, directions: torch.Tensor, *, steps: int = 500,
               form: IFVObjective = IFVObjective(), lr: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-optimize a copy of `param` for `steps` Adam steps under `directions (B, k)`; SSIM before/after `(B,)`.

    High SSIM means the realization was already an optimum of the direction (Reinbold & Westermann 2020, sec. 3). Returns
    `(ssim, images_after)`; `param` itself is not changed.
    """
    p = copy.deepcopy(param)
    with torch.no_grad():
        before = p().detach()
    obj = aggregated_direction(layer, directions, form)
    after = render(model, obj, p, transforms=None, steps=steps, lr=lr).images
    return ssim(before.cpu(), after), after
