"""Subspace tools for the critical-space search (Reinbold & Westermann 2020, Algorithm 1): principal angles, SLERP, merging."""

from __future__ import annotations

import dataclasses
import math

import torch

from ..errors import ObjectiveError


def orthonormalize(a: torch.Tensor, tol: float = 1e-10) -> torch.Tensor:
    """An orthonormal basis `(n, r)` of the column space of `a (n, m)` (QR with rank from the R diagonal)."""
    if a.shape[1] == 0:
        return a
    q, r = torch.linalg.qr(a)
    keep = r.diagonal().abs() > tol * max(1.0, float(r.diagonal().abs().max()))
    return q[:, keep]


def principal_angles(qa: torch.Tensor, qb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal angles (radians, ascending) and principal vectors of two subspaces with orthonormal bases.

    Cosines come from the SVD of `Qa^T Qb`; angles whose cosine is close to 1 are taken from the sines, the singular
    values of `Qb - Qa Qa^T Qb` (Knyazev & Argentati 2002; as scipy.linalg.subspace_angles), accurate for small
    angles. Returns `(angles (m,), P (n, m), Q (n, m))`, `m = min(dim a, dim b)`, with `p_i = Qa u_i`, `q_i = Qb v_i`.
    """
    u, s, vh = torch.linalg.svd(qa.T @ qb, full_matrices=False)
    p, q = qa @ u, qb @ vh.T
    cos = s.clamp(-1.0, 1.0)
    angles = torch.arccos(cos)
    small = cos ** 2 > 0.5
    if small.any():
        # sines are the singular values of the part of Qb outside span(Qa); ascending, the first m pair with the
        # ascending angles (when dim b > dim a the extra ones are 1)
        sines = torch.linalg.svdvals(qb - qa @ (qa.T @ qb)).flip(0)[: angles.numel()].clamp(0.0, 1.0)
        angles = torch.where(small, torch.arcsin(sines), angles)
    return angles, p, q


def slerp(p: torch.Tensor, q: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between unit columns `p, q (n, m)` at fraction `t` (0 gives `p`); unit norm out."""
    cos = (p * q).sum(dim=0).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    t = torch.as_tensor(t, dtype=p.dtype, device=p.device)
    safe = sin > 1e-7
    a = torch.where(safe, torch.sin((1 - t) * omega) / torch.where(safe, sin, torch.ones_like(sin)), 1 - t)
    b = torch.where(safe, torch.sin(t * omega) / torch.where(safe, sin, torch.ones_like(sin)), t)
    out = a * p + b * q
    return out / out.norm(dim=0, keepdim=True).clamp(min=1e-30)


@dataclasses.dataclass
class Subspace:
    """An orthonormal basis `(n, d)` and how many samples were merged into it."""

    basis: torch.Tensor
    count: int = 1

    @property
    def dim(self) -> int:
        return self.basis.shape[1]


def merge(a: Subspace, b: Subspace, max_angle_deg: float = 45.0) -> Subspace:
    """Merge two approximate co-kernels: keep principal-vector pairs within `max_angle_deg`, SLERP each kept pair
    with `t = n_b / (n_a + n_b)`, re-orthonormalize; the merged count is `n_a + n_b`.
    """
    if a.dim == 0 or b.dim == 0:
        return Subspace(a.basis[:, :0], a.count + b.count)
    angles, p, q = principal_angles(a.basis, b.basis)
    keep = angles <= math.radians(max_angle_deg)
    t = b.count / (a.count + b.count)
    merged = slerp(p[:, keep], q[:, keep], t)
    return Subspace(orthonormalize(merged), a.count + b.count)


def merge_all(spaces: list[Subspace], max_angle_deg: float = 45.0) -> Subspace:
    """Merge subspaces pairwise (neighbours, level by level, like a balanced tree) until one is left."""
    if not spaces:
        raise ObjectiveError("merge_all needs at least one subspace")
    level = list(spaces)
    while len(level) > 1:
        nxt = [merge(level[i], level[i + 1], max_angle_deg) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def co_kernel(a: torch.Tensor, eps: float) -> torch.Tensor:
    """Approximate co-kernel of `A (k, n)`: left singular vectors with singular value below `eps * sigma_max`.

    From `eigh(A A^T)` (eigenvalues are squared singular values). Returns an orthonormal basis `(k, d)`.
    """
    evals, evecs = torch.linalg.eigh(a @ a.T)
    sigma = evals.clamp(min=0).sqrt()
    return evecs[:, sigma < eps * sigma.max()]


def complement(basis: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the orthogonal complement of the columns of `basis (k, d)`: `(k, k - d)`."""
    k, d = basis.shape
    if d == 0:
        return torch.eye(k, dtype=basis.dtype, device=basis.device)
    proj = torch.eye(k, dtype=basis.dtype, device=basis.device) - basis @ basis.T
    evals, evecs = torch.linalg.eigh(proj)
    return evecs[:, evals > 0.5]
