"""Critical-space search (Reinbold & Westermann 2020, Algorithm 1).

Trivial solutions shared by every input (a dead unit, softmax shift invariance) make `J^T M theta` vanish for
every realization, so unrestricted IFV may return them. Each realization's approximate co-kernel (left singular
vectors of `A_j = M_j J_j` with singular value below `eps * sigma_max`) contains them; merging the co-kernels
pairwise through principal angles keeps only what they share, `K`; the critical space is `C = K^perp`.

The singular vectors of `A_j` are what :func:`recover_objective` returns when run without a critical space, so the
search takes those results and costs no further Jacobians.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from ..errors import ObjectiveError
from .recover import RecoveredObjective
from .subspace import Subspace, complement, merge_all


@dataclasses.dataclass
class CriticalSpace:
    """One critical space: its basis `(k, d)`, the shared co-kernel `(k, k - d)` and the `eps` interval giving it."""

    basis: torch.Tensor
    kernel: torch.Tensor
    eps_low: float
    eps_high: float

    @property
    def dim(self) -> int:
        return self.basis.shape[1]


def _co_kernels(samples: Sequence[RecoveredObjective], eps: float) -> list[Subspace]:
    out = []
    for r in samples:
        sigma = r.singular_values.double()
        if r.singular_vectors.shape[1] != r.singular_vectors.shape[0]:
            raise ObjectiveError("critical-space search needs results of recover_objective without a critical space")
        out.append(Subspace(r.singular_vectors.double()[:, sigma <= eps * sigma.max()]))
    return out


def critical_space(samples: Sequence[RecoveredObjective], eps: float, *, max_angle_deg: float = 45.0
                   ) -> CriticalSpace:
    """Algorithm 1 at one threshold: merge the samples' co-kernels (in the given order, pairwise like a balanced
    tree, pairs past `max_angle_deg` dropped, kept pairs SLERPed by merged counts) and return `C = K^perp`."""
    if not samples:
        raise ObjectiveError("critical-space search needs at least one recovered sample")
    if not 0 < eps < 1:
        raise ObjectiveError(f"eps is relative to the largest singular value and must lie in (0, 1); got {eps}")
    kernel = merge_all(_co_kernels(samples, eps), max_angle_deg).basis
    basis = complement(kernel)
    if basis.shape[1] == 0:
        raise ObjectiveError(f"the critical space at eps={eps:g} has dimension 0 (every direction is a trivial"
                             " solution); lower eps")
    return CriticalSpace(basis.float(), kernel.float(), eps, eps)


def critical_spaces(samples: Sequence[RecoveredObjective], *, eps_low: float = 1e-6, eps_high: float = 0.5,
                    max_angle_deg: float = 45.0, resolution: float = 1.05, grid_points: int = 13
                    ) -> list[CriticalSpace]:
    """Every distinct critical space over `eps` in `[eps_low, eps_high]`, by nested intervals.

    The co-kernel grows with `eps`, so the critical-space dimension falls. `eps` is first sampled at `grid_points`
    log-spaced values; adjacent samples whose dimensions differ are bisected (geometrically) until their ends are within a factor `resolution`; each distinct
    dimension is listed once with the `eps` interval it was seen on (ascending `eps`, descending dimension).
    Spaces of dimension 0 are left out.
    """
    if isinstance(samples, torch.Tensor) or not all(hasattr(r, "singular_values") for r in samples):
        raise ObjectiveError("critical_spaces takes the recovered objectives of several realizations (a list of"
                             " invviz.ifv.recover_objective results), not a tensor; got"
                             f" {type(samples).__name__}")
    if not 0 < eps_low < eps_high < 1 or resolution <= 1:
        raise ObjectiveError(f"need 0 < eps_low < eps_high < 1 and resolution > 1; got {eps_low}, {eps_high},"
                             f" {resolution}")
    cache: dict[float, torch.Tensor] = {}

    def kernel_at(eps: float) -> torch.Tensor:
        if eps not in cache:
            cache[eps] = merge_all(_co_kernels(samples, eps), max_angle_deg).basis
        return cache[eps]

    def bisect(lo: float, hi: float) -> None:
        if kernel_at(lo).shape[1] == kernel_at(hi).shape[1] or hi / lo <= resolution:
            return
        mid = math.sqrt(lo * hi)
        bisect(lo, mid)
        bisect(mid, hi)

    grid = [eps_low * (eps_high / eps_low) ** (i / (grid_points - 1)) for i in range(grid_points)]
    for lo, hi in zip(grid[:-1], grid[1:]):
        bisect(lo, hi)
    out: list[CriticalSpace] = []
    for eps in sorted(cache):
        kernel = kernel_at(eps)
        k = kernel.shape[0]
        if kernel.shape[1] == k:
            continue
        if out and out[-1].kernel.shape[1] == kernel.shape[1]:
            out[-1].eps_high = eps
            continue
        out.append(CriticalSpace(complement(kernel).float(), kernel.float(), eps, eps))
    return out
