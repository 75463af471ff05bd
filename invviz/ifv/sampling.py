"""Target objectives with uniformly distributed Hoyer sparseness (Hoyer 2004's projection)."""

from __future__ import annotations

import math

import torch

from ..errors import ObjectiveError


def hoyer_sparseness(t: torch.Tensor) -> torch.Tensor:
    """`H(t) = (sqrt(k) - |t|_1 / |t|_2) / (sqrt(k) - 1)` over the last axis: 0 for a flat vector, 1 for one-hot."""
    k = t.shape[-1]
    return (math.sqrt(k) - t.abs().sum(-1) / t.norm(dim=-1)) / (math.sqrt(k) - 1)


def project_nonneg(x: torch.Tensor, l1: float, l2: float, max_iter: int = 1000) -> torch.Tensor:
    """Hoyer's projection: the non-negative vector closest to `x (k,)` with `|s|_1 = l1` and `|s|_2 = l2`."""
    k = x.numel()
    s = x + (l1 - x.sum()) / k
    zeroed = torch.zeros(k, dtype=torch.bool, device=x.device)
    for _ in range(max_iter):
        free = (~zeroed).sum()
        m = torch.where(zeroed, torch.zeros_like(s), torch.full_like(s, l1 / float(free)))
        d = s - m
        a, b, c = (d * d).sum(), 2 * (m * d).sum(), (m * m).sum() - l2 ** 2
        disc = (b * b - 4 * a * c).clamp(min=0)
        alpha = (-b + disc.sqrt()) / (2 * a).clamp(min=1e-30)
        s = m + alpha * d
        if (s >= 0).all():
            return s
        zeroed |= s < 0
        s = torch.where(zeroed, torch.zeros_like(s), s)
        free = (~zeroed).sum()
        s = torch.where(zeroed, s, s - (s.sum() - l1) / float(free))
    return s.clamp(min=0)


def sample_targets(k: int, n: int, *, canonical: bool = True, rng: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` non-negative unit targets with Hoyer sparseness drawn uniformly in [0, 1], then the `k` canonical vectors.

    Returns `(targets (n [+ k], k), sparseness (n [+ k],))`.
    """
    if k < 2:
        raise ObjectiveError(f"target sampling needs at least 2 features; got {k}")
    h = torch.rand(n, generator=rng, dtype=torch.float64)
    out = []
    for hi in h.tolist():
        x = torch.rand(k, generator=rng, dtype=torch.float64)
        l1 = math.sqrt(k) - hi * (math.sqrt(k) - 1)
        out.append(project_nonneg(x, l1, 1.0))
    targets = torch.stack(out) if out else torch.zeros(0, k, dtype=torch.float64)
    if canonical:
        targets = torch.cat([targets, torch.eye(k, dtype=torch.float64)])
    return targets.float(), hoyer_sparseness(targets).float()
