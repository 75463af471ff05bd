"""Comparing networks through their features (Reinbold & Westermann's stated goal): visualize a feature in network A, invert the
image in network B, and read off the feature of B that represents the same pattern."""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import nn

from ..errors import ObjectiveError
from ..models.probe import Probe, as_probe
from .jacobian import pixel_realization
from .objective import IFVObjective
from .realize import realize, reoptimize
from .recover import MIN_RESPONSE_COSINE, recover_objective
from .sampling import hoyer_sparseness

TRIVIAL_SIGMA = 1e-6  # singular values below this fraction of the largest are directions any image is optimal for


@dataclasses.dataclass
class Match:
    """The result of :func:`match`.

    Attributes:
        direction: the recovered unit direction in B's layer `(k_b,)` (the non-trivial one when `trivial`).
        sparseness: Hoyer sparseness of `|direction|` (1: a single unit).
        ssim: SSIM of A's visualization before/after re-optimizing it in B under `direction` (high: B's direction
            is optimal for the same image).
        top_units: B's units with the largest weights in `direction`, descending; `top_weights` their weights.
        image: A's visualization `(1, 3, H, W)`.
        relative_gradient: IFV's optimality measure in B (large values mean B has no direction for which the image
            is an optimum).
        trivial: the unrestricted solution was a trivial one — a direction every image is an optimum of (units that
            do not respond: singular value ~0, or no response along it); it was set aside.
        excluded: how many trivial directions were set aside.
        response_cosine: `cos(response of B, direction)`.
        warnings: what makes this match untrustworthy (empty when nothing does).
    """

    direction: torch.Tensor
    sparseness: float
    ssim: float
    top_units: list[int]
    top_weights: list[float]
    image: torch.Tensor
    relative_gradient: float
    trivial: bool = False
    excluded: int = 0
    response_cosine: float = float("nan")
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def trusted(self) -> bool:
        return not self.warnings


def _non_trivial(rec) -> tuple[torch.Tensor, int]:
    """The best direction among the singular vectors whose singular value is not ~0, sign fixed."""
    sigma = rec.singular_values.double()
    keep = sigma > TRIVIAL_SIGMA * sigma.max()
    excluded = int((~keep).sum())
    if not bool(keep.any()):
        return rec.direction, excluded
    idx = int(torch.nonzero(keep)[0])
    d = rec.singular_vectors[:, idx].clone()
    if float(rec.response.double() @ d.double()) < 0:
        d = -d
    return d, excluded


def match(model_a: nn.Module | Probe, layer_a: str, objective: int | torch.Tensor, model_b: nn.Module | Probe,
          layer_b: str, *, form: IFVObjective = IFVObjective(), size: int = 128,
          adam_steps: int = 400, lbfgs_steps: int = 100, reopt_steps: int = 200, top: int = 5, seed: int = 0,
          points: int = 9) -> Match:
    """Visualize `objective` (a channel index or a direction `(k_a,)`) in A, then recover B's direction for it.

    `form` is the direction objective's cosine power, aggregation and position (:class:`~invviz.ifv.IFVObjective`),
    in both models. Either model may be a :class:`~invviz.Probe` (its preprocessing and layouts)."""
    model_a, model_b = as_probe(model_a), as_probe(model_b)
    form = IFVObjective.checked(form, "form")
    if isinstance(objective, int):
        k_a = model_a.reading([layer_a]).channels(layer_a, size)
        if not 0 <= objective < k_a:
            raise ObjectiveError(f"channel {objective} out of range for {layer_a!r} with {k_a} channels")
        target = torch.zeros(k_a)
        target[objective] = 1.0
    else:
        target = torch.as_tensor(objective, dtype=torch.float32).flatten()
    real = realize(model_a, layer_a, target, form=form, size=size, adam_steps=adam_steps, lbfgs_steps=lbfgs_steps,
                   seed=seed)
    param = real.element(0)
    image = param().detach()
    pixels = pixel_realization(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an A-optimum is rarely an exact B-optimum; the checks are reported instead
        rec = recover_objective(model_b, layer_b, pixels, form=form, points=points, seed=seed)
    d, excluded = _non_trivial(rec)
    trivial = excluded > 0  # the unrestricted prediction (the smallest singular value) was one of them
    v = rec.response.double()
    cos = float((v @ d.double()) / (v.norm() * d.double().norm()).clamp(min=1e-300))
    notes = []
    if trivial:
        notes.append(f"the unrestricted solution was trivial ({excluded} direction(s) with singular value ~0: units of"
                     f" {layer_b!r} that do not respond to this image); the best non-trivial direction is reported")
    notes += [w for w in rec.warnings if not w.startswith("the prediction points at units")]
    if cos < MIN_RESPONSE_COSINE:
        notes.append(f"the matched direction barely responds to the image in B (cosine {cos:.3g}); B has no unit that"
                     " responds to A's pattern")
    ssim, _ = reoptimize(model_b, layer_b, pixels, d[None], steps=reopt_steps, form=form)
    order = d.abs().argsort(descending=True)[:top]
    if notes:
        warnings.warn("ifv.match: " + "; ".join(notes), stacklevel=2)
    return Match(direction=d, sparseness=float(hoyer_sparseness(d.abs())), ssim=float(ssim[0]),
                 top_units=order.tolist(), top_weights=d[order].tolist(), image=image.cpu(),
                 relative_gradient=rec.relative_gradient, trivial=trivial, excluded=excluded, response_cosine=cos,
                 warnings=notes)
