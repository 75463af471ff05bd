"""The objective Grad-IFV inverts (Reinbold & Westermann 2020, sec. 2.3): a unit direction
on the layer's response aggregated over space, `<v, d> cos(v, d)^p` with `v = agg(features)`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import ObjectiveError
from ..optvis.objectives import Direction, Features, _features, _per_element, dot_cossim
from ..settings import AGGREGATIONS, IFVObjective

Aggregation = Literal["maxpool_mean", "mean", "pick"]
AGG_POOL_KERNEL, AGG_POOL_STRIDE = 3, 1  # the max-pool before the mean: 3x3, stride 1, no padding


def aggregate(feats: torch.Tensor, method: Aggregation = "maxpool_mean", *, position: tuple[int, int] | None = None,
              kernel: int = AGG_POOL_KERNEL, stride: int = AGG_POOL_STRIDE) -> torch.Tensor:
    """Aggregate features `(B, C, H, W)` into one response per channel `(B, C)`.

    `"maxpool_mean"`: max-pool (kernel 3, stride 1 by default; a grid smaller than the kernel is pooled whole)
    then the spatial mean (breaks the linearity that makes plain means of convolution outputs degenerate);
    `"mean"`: the spatial mean; `"pick"`: the value at `position` (row, column; the centre by default).
    """
    if method == "mean":
        return feats.mean(dim=(2, 3))
    if method == "maxpool_mean":
        h, w = feats.shape[2:]
        k = min(kernel, h, w)
        return F.max_pool2d(feats, k, stride=stride).mean(dim=(2, 3))
    if method == "pick":
        h, w = feats.shape[2:]
        y, x = position if position is not None else (h // 2, w // 2)
        if not (0 <= y < h and 0 <= x < w):
            raise ObjectiveError(f"position (row {y}, column {x}) is outside the {h}x{w} grid")
        return feats[:, :, y, x]
    raise ObjectiveError(f"unknown aggregation {method!r}; use one of {AGGREGATIONS}")


def aggregate_as(feats: torch.Tensor, form: IFVObjective) -> torch.Tensor:
    """:func:`aggregate` with the aggregation and position of `form`."""
    return aggregate(feats, form.aggregation, position=form.position)  # type: ignore[arg-type]


class AggregatedDirection(Direction):
    """`<v, d> * cos(v, d) ** form.cossim_pow` on the aggregated response `v (B, C)` (no 0.1 floor; the plain dot
    product where `cos <= 0`, see :func:`invviz.optvis.objectives.dot_cossim`). `vector` is `(C,)` or `(B, C)`."""

    def __init__(self, layer: str, vector: torch.Tensor | Sequence[float], form: IFVObjective = IFVObjective(),
                 batch: int | None = None) -> None:
        self.form = IFVObjective.checked(form, "form")
        super().__init__(layer, vector, form.cossim_pow, batch)
        rows = f"{self.vector.shape[0]} x " if self.vector.shape[0] > 1 else ""
        self.name = f"aggregated_direction({layer!r}, <{rows}{self.vector.shape[1]} values>, {form})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        vec = self._vec(f)  # (1 or B, C, 1, 1)
        v = aggregate_as(f, self.form)[:, :, None, None]  # (B, C, 1, 1)
        return _per_element(dot_cossim(v, vec, self.cossim_pow, floor=None, eps=0.0)[:, 0, 0], self.batch)


def aggregated_direction(layer: str, vector: torch.Tensor | Sequence[float], form: IFVObjective = IFVObjective(),
                         batch: int | None = None) -> AggregatedDirection:
    """Grad-IFV's objective: a direction on the aggregated response (see :class:`AggregatedDirection`)."""
    return AggregatedDirection(layer, vector, form, batch)


__all__ = ["AGGREGATIONS", "Aggregation", "IFVObjective", "aggregate", "aggregate_as", "AggregatedDirection",
           "aggregated_direction"]
