"""`recover_objective`: the unit direction a feature visualization was optimized for (Grad-IFV, seed 001).

At an optimum of `s(v, theta) = <v, theta> cos(v, theta)^p` the gradient `c(theta) J^T M theta` vanishes, with
`J = dv/dxi (k, n)` and `M = (p + 1) I - p v v^T / |v|^2`. So `theta_hat = B u`, `u` the eigenvector of the smallest
eigenvalue of `B^T M J J^T M B` (`B` an orthonormal basis of the critical space, the identity by default), its sign
chosen so that `<v, theta_hat> > 0`.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import nn

from ..errors import ObjectiveError
from ..models.capture import Capture
from ..models.state import frozen_eval
from ..optvis.param import ImageParam
from .jacobian import Aggregation, free_variables, jacobian, pixel_realization, response_fn

FAR_FROM_OPTIMUM = 0.05  # relative gradient norm above which IFV warns that the input is not an optimum


@dataclasses.dataclass
class RecoveredObjective:
    """The result of :func:`recover_objective`.

    Attributes:
        direction: predicted unit objective `(k,)`, sign fixed so that `<response, direction> > 0`.
        singular_values: all singular values of `B^T M J` (ascending), `(d,)`.
        singular_vectors: the matching left singular vectors in feature space `(k, d)` (columns).
        response: the aggregated feature response `v (k,)`.
        relative_gradient: `|J^T M theta| / (|J^T M| |theta|)` for the prediction (0 at an exact optimum).
        target_coefficients: coefficients of a known target in the singular basis `(d,)` (seed Fig. 2/3), or None.
    """

    direction: torch.Tensor
    singular_values: torch.Tensor
    singular_vectors: torch.Tensor
    response: torch.Tensor
    relative_gradient: float
    target_coefficients: torch.Tensor | None = None


def cosine_matrix(v: torch.Tensor, cossim_pow: float) -> torch.Tensor:
    """`M = (p + 1) I - p v v^T / |v|^2` `(k, k)`."""
    k = v.numel()
    eye = torch.eye(k, dtype=v.dtype, device=v.device)
    if cossim_pow == 0:
        return eye
    vn = v / v.norm().clamp(min=1e-30)
    return (cossim_pow + 1) * eye - cossim_pow * torch.outer(vn, vn)


def solve(jac: torch.Tensor, v: torch.Tensor, cossim_pow: float, basis: torch.Tensor | None = None,
          target: torch.Tensor | None = None) -> RecoveredObjective:
    """The linear-algebra core: from `J (k, n)` and `v (k,)` to the predicted objective (float64 inside)."""
    j64, v64 = jac.double(), v.double()
    k = v64.numel()
    m = cosine_matrix(v64, cossim_pow)
    b = torch.eye(k, dtype=torch.float64, device=v.device) if basis is None else basis.double()
    if b.shape[1] == 0:
        raise ObjectiveError("the critical space has dimension 0: no objective can be recovered in it")
    mj = m @ j64  # (k, n)
    a = b.T @ mj  # (d, n)
    evals, evecs = torch.linalg.eigh(a @ a.T)  # ascending; eigenvalues are squared singular values
    theta = b @ evecs[:, 0]
    if float(v64 @ theta) < 0:
        theta = -theta
    grad = mj.T @ theta
    rel = float(grad.norm() / (torch.linalg.matrix_norm(mj, ord=2) * theta.norm()).clamp(min=1e-30))
    coeffs = None
    if target is not None:
        t = target.double().to(v.device)
        coeffs = (b @ evecs).T @ (t / t.norm())
    return RecoveredObjective(
        direction=theta.float(), singular_values=evals.clamp(min=0).sqrt().float(),
        singular_vectors=(b @ evecs).float(), response=v.float(), relative_gradient=rel,
        target_coefficients=None if coeffs is None else coeffs.float(),
    )


def offsets(xi: torch.Tensor, n: int, radius: float, *, antithetic: bool = True, seed: int = 0) -> list[torch.Tensor]:
    """`n` Gaussian offsets of standard deviation `radius`, shaped like `xi`; in `+d, -d` pairs when `antithetic`
    (with `n` odd the last draw is unpaired)."""
    gen = torch.Generator(device=xi.device).manual_seed(seed)
    out: list[torch.Tensor] = []
    while len(out) < n:
        d = torch.randn(xi.shape, generator=gen, device=xi.device, dtype=xi.dtype) * radius
        out += [d, -d] if antithetic else [d]
    return out[:n]


def recover_objective(
    model: nn.Module,
    layer: str,
    realization: ImageParam | torch.Tensor,
    *,
    cossim_pow: float = 1.0,
    aggregation: Aggregation = "maxpool_mean",
    position: tuple[int, int] | None = None,
    critical_space: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    chunk: int = 64,
    points: int = 1,
    radius: float = 1e-3,
    antithetic: bool = True,
    seed: int = 0,
) -> RecoveredObjective:
    """Recover the unit objective that `realization` maximizes at `layer` (Grad-IFV).

    Args:
        model: the network the visualization was made with.
        layer: layer name; its features are aggregated with `aggregation` into `v (k,)`.
        realization: the parameterization that produced the image (its free variables are differentiated: pixel,
            FFT, MaCo), or the image itself `(3, H, W)` in (0, 1) (treated as a pixel parameterization).
        cossim_pow: the cosine power `p >= 0` of the direction objective.
        aggregation: `"maxpool_mean"` (the seed's), `"mean"` or `"pick"` (`position`).
        critical_space: orthonormal basis `(k, d)` to search in (see :mod:`invviz.ifv.subspace`); all of R^k if None.
        target: a known target `(k,)`, to report its coefficients in the singular basis.
        chunk: vector-Jacobian products per batch (bounds memory).
        points: number of points the Jacobian is taken at: the realization itself, and `points - 1` points at
            Gaussian offsets of standard deviation `radius` (in free-variable units) around it. `M J` is averaged over
            them, which is the Jacobian of the smoothed objective: ReLU6 and max-pooling make the objective
            non-smooth, so its gradient at the optimum does not vanish, but the smoothed one's nearly does.
        radius: offset scale for `points > 1` (the default was chosen on pixel realizations, logit units:
            `benchmarks/ifv_multipoint_sweep.py`).
        antithetic: draw the offsets in `+d, -d` pairs, so the smooth first-order change of `M J` cancels in the
            average and only the non-smooth part is averaged (measured: a large gain over independent offsets).
        seed: seeds the offsets.
    """
    if cossim_pow < 0:
        raise ObjectiveError(f"cossim_pow must be >= 0; got {cossim_pow}")
    if points < 1 or radius < 0:
        raise ObjectiveError(f"need points >= 1 and radius >= 0; got points={points}, radius={radius}")
    param = realization if isinstance(realization, ImageParam) else pixel_realization(realization)
    if param.batch != 1:
        raise ObjectiveError(f"recover one realization at a time; this parameterization renders {param.batch}")
    name, xi = free_variables(param)
    with frozen_eval(model), Capture(model, [layer]) as cap:
        response = response_fn(model, layer, cap, aggregation, position)

        def fn(t: torch.Tensor) -> torch.Tensor:
            return response(torch.func.functional_call(param, {name: t}, ()))

        v, jac = jacobian(fn, xi, chunk=chunk)
        if v.numel() < 2:
            raise ObjectiveError(f"layer {layer!r} has a single feature; there is no direction to recover")
        if points > 1:
            # average M_i J_i over the points, then hand solve() the average with M = I folded in
            mj = cosine_matrix(v.double(), cossim_pow) @ jac.double()
            for offset in offsets(xi, points - 1, radius, antithetic=antithetic, seed=seed):
                vi, ji = jacobian(fn, xi.detach() + offset, chunk=chunk)
                mj += cosine_matrix(vi.double(), cossim_pow) @ ji.double()
            jac = mj / points
    # with several points M is already folded into the averaged Jacobian (M = I for p = 0)
    result = solve(jac, v, 0.0 if points > 1 else cossim_pow, critical_space, target)
    if result.relative_gradient > FAR_FROM_OPTIMUM:
        warnings.warn(
            f"the realization is not near an optimum of the recovered objective (relative gradient norm"
            f" {result.relative_gradient:.3g} > {FAR_FROM_OPTIMUM}); optimize it further (Adam then L-BFGS, no"
            " random transforms) before trusting the prediction", stacklevel=2)
    return result


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angular distance in degrees between two vectors."""
    cos = (a.double() @ b.double()) / (a.double().norm() * b.double().norm())
    return float(torch.rad2deg(torch.arccos(cos.clamp(-1, 1))))
