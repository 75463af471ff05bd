"""`recover_objective`: the unit direction a feature visualization was optimized for (Grad-IFV: Reinbold &
Westermann 2020, "Inverting the Feature Visualization Process for Feedforward Neural Networks").

At an optimum of `s(v, theta) = <v, theta> cos(v, theta)^p` the gradient `c(theta) J^T M theta` vanishes, with
`J = dv/dxi (k, n)` and `M = (p + 1) I - p v v^T / |v|^2`. So `theta_hat = B u`, `u` the eigenvector of the smallest
eigenvalue of `B^T M J J^T M B` (`B` an orthonormal basis of the critical space, the identity by default), its sign
chosen so that `<v, theta_hat> > 0`.

The answer is only as good as the realization: :func:`recover_objective` measures how far the image is from an
optimum, whether the returned direction is a trivial one (units that do not respond), whether the parameterization
is saturated, and whether the smallest singular value is separated from the next, and says so (`trusted`,
`warnings`, and a Python warning) rather than returning a confident wrong answer. The thresholds were calibrated on
realizations of known targets (`benchmarks/ifv_trust.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..errors import ObjectiveError
from ..models.probe import Probe, as_probe
from ..optvis.param import ImageParam
from .jacobian import free_variables, jacobian, pixel_realization, response_fn
from .objective import IFVObjective

# Trust thresholds (benchmarks/ifv_trust.py measures how often each fires on good and on bad realizations)
FAR_FROM_OPTIMUM = 0.05  # relative gradient norm of the prediction above which the image is not an optimum of it
MIN_RESPONSE_COSINE = 0.1  # cos(response, prediction) below which the prediction points at units that do not respond
MAX_SATURATION = 0.5  # fraction of pixels within 1e-3 of 0 or 1 above which the Jacobian is degenerate
MIN_SPECTRAL_GAP = 1.0  # sigma_1 / sigma_0 at or below which the prediction is not identified (kept off by default)


@dataclasses.dataclass
class RecoveredObjective:
    """The result of :func:`recover_objective`.

    Attributes:
        direction: predicted unit objective `(k,)`, sign fixed so that `<response, direction> > 0`.
        singular_values: all singular values of `B^T M J` (ascending), `(d,)`.
        singular_vectors: the matching left singular vectors in feature space `(k, d)` (columns).
        response: the aggregated feature response `v (k,)`.
        relative_gradient: `|J^T M theta| / (|J^T M| |theta|)` for the prediction (0 at an exact optimum).
        target_coefficients: coefficients of a known target in the singular basis `(d,)` (the paper's Fig. 2/3),
            or None.
        response_cosine: `cos(v, theta_hat)`; near 0 when the prediction lies on units that do not respond (a
            trivial solution, e.g. dead units).
        spectral_gap: `sigma_1 / sigma_0`, how far the smallest singular value stands from the next.
        saturation: fraction of the image's values within 1e-3 of 0 or 1 (saturated sigmoids flatten the Jacobian).
        warnings: what the checks found; empty when the prediction can be trusted (`trusted`).
        preprocessing: the model's normalization the Jacobian was taken through.
    """

    direction: torch.Tensor
    singular_values: torch.Tensor
    singular_vectors: torch.Tensor
    response: torch.Tensor
    relative_gradient: float
    target_coefficients: torch.Tensor | None = None
    response_cosine: float = float("nan")
    spectral_gap: float = float("nan")
    saturation: float = float("nan")
    warnings: list[str] = dataclasses.field(default_factory=list)
    preprocessing: object = None

    @property
    def trusted(self) -> bool:
        """True when none of the checks fired (see `warnings`)."""
        return not self.warnings


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
    sigma = evals.clamp(min=0).sqrt()
    gap = float(sigma[1] / sigma[0].clamp(min=1e-300)) if sigma.numel() > 1 else float("inf")
    cos = float((v64 @ theta) / (v64.norm() * theta.norm()).clamp(min=1e-300))
    return RecoveredObjective(
        direction=theta.float(), singular_values=sigma.float(),
        singular_vectors=(b @ evecs).float(), response=v.float(), relative_gradient=rel,
        target_coefficients=None if coeffs is None else coeffs.float(), response_cosine=cos, spectral_gap=gap,
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


def point_jacobians(fn: Callable[[torch.Tensor], torch.Tensor], xi: torch.Tensor, *, points: int, radius: float,
                    cossim_pow: float, antithetic: bool = True, seed: int = 0, chunk: int = 64, center: bool = True
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The terms of the multi-point Jacobian, one point at a time (memory for one): `(v_i, J_i, M_i J_i)` at `xi`
    (unless `center=False`) and at `points - 1` offsets of standard deviation `radius` around it (:func:`offsets`),
    `M_i J_i` in float64. Their mean is the Jacobian of the smoothed objective that :func:`recover_objective`
    solves with."""
    for offset in [None] * center + offsets(xi, points - 1, radius, antithetic=antithetic, seed=seed):
        vi, ji = jacobian(fn, xi.detach() if offset is None else xi.detach() + offset, chunk=chunk)
        yield vi, ji, cosine_matrix(vi.double(), cossim_pow) @ ji.double()


def recover_objective(
    model: nn.Module | Probe,
    layer: str,
    realization: ImageParam | torch.Tensor,
    *,
    form: IFVObjective = IFVObjective(),
    critical_space: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    chunk: int = 64,
    points: int = 9,
    radius: float = 1e-3,
    antithetic: bool = True,
    seed: int = 0,
) -> RecoveredObjective:
    """Recover the unit objective that `realization` maximizes at `layer` (Grad-IFV).

    Args:
        model: the network the visualization was made with, or a :class:`~invviz.Probe` of it.
        layer: layer name; its features are aggregated as `form` says into `v (k,)`.
        realization: the parameterization that produced the image (its free variables are differentiated: pixel,
            FFT, MaCo), or the image itself `(3, H, W)` in (0, 1) (treated as a pixel parameterization).
        form: the direction objective's cosine power `p` and aggregation (:class:`~invviz.ifv.IFVObjective`; the
            paper's `maxpool_mean` and `p = 1` by default).
        critical_space: orthonormal basis `(k, d)` to search in (see :mod:`invviz.ifv.subspace`); all of R^k if None.
        target: a known target `(k,)`, to report its coefficients in the singular basis.
        chunk: vector-Jacobian products per batch (bounds memory).
        points: number of points the Jacobian is taken at (default 9, chosen by measurement — the README's Grad-IFV
            table — at 8x the cost of `points=1`, the paper's one-point solver): the realization itself, and
            `points - 1` points at Gaussian offsets of standard deviation `radius` (in free-variable units) around it. `M J` is averaged over
            them, which is the Jacobian of the smoothed objective: ReLU6 and max-pooling make the objective
            non-smooth, so its gradient at the optimum does not vanish, but the smoothed one's nearly does.
        radius: offset scale for `points > 1` (the default was chosen on pixel realizations, logit units:
            `benchmarks/ifv_multipoint_sweep.py`).
        antithetic: draw the offsets in `+d, -d` pairs, so the smooth first-order change of `M J` cancels in the
            average and only the non-smooth part is averaged (measured: a large gain over independent offsets).
        seed: seeds the offsets.
    """
    base = as_probe(model)
    form = IFVObjective.checked(form, "form")
    cossim_pow = form.cossim_pow
    if not isinstance(points, int) or isinstance(points, bool) or points < 1 or not radius >= 0:
        raise ObjectiveError(f"need an int points >= 1 and radius >= 0; got points={points!r}, radius={radius!r}")
    probe = base.reading([layer])
    if isinstance(realization, ImageParam):
        param = realization
        first = next(param.parameters())
        if first.dtype != probe.dtype or first.device != probe.device:  # the Jacobian in the model's precision
            param = copy.deepcopy(param).to(device=probe.device, dtype=probe.dtype)
    elif isinstance(realization, torch.Tensor):
        param = pixel_realization(realization.to(device=probe.device, dtype=probe.dtype))
    else:
        raise ObjectiveError(f"a realization is the ImageParam that made the image, or the image (C, H, W) in (0, 1);"
                             f" got {type(realization).__name__}")
    if param.batch != 1:
        raise ObjectiveError(f"recover one realization at a time; this parameterization renders {param.batch}"
                             " (use realization.element(i))")
    name, xi = free_variables(param)
    with probe, torch.no_grad():
        image = param()
        probe(image)  # the probing forward runs here, outside the functional transforms below
    with probe:
        response = response_fn(probe, layer, form)

        def fn(t: torch.Tensor) -> torch.Tensor:
            return response(torch.func.functional_call(param, {name: t}, ()))

        terms = point_jacobians(fn, xi, points=points, radius=radius, cossim_pow=cossim_pow, antithetic=antithetic,
                                seed=seed, chunk=chunk)
        v, jac, mj = next(terms)
        if v.numel() < 2:
            raise ObjectiveError(f"layer {layer!r} has a single feature; there is no direction to recover")
        if points > 1:  # average M_i J_i over the points, then hand solve() the average with M = I folded in
            for _, _, term in terms:
                mj = mj + term
            jac = mj / points
    # with several points M is already folded into the averaged Jacobian (M = I for p = 0)
    result = solve(jac, v, 0.0 if points > 1 else cossim_pow, critical_space, target)
    result.saturation = float(((image < 1e-3) | (image > 1 - 1e-3)).float().mean())
    result.preprocessing = probe.preprocessing
    result.warnings = trust_warnings(result)
    if result.warnings:
        warnings.warn("Grad-IFV: " + "; ".join(result.warnings), stacklevel=2)
    return result


def trust_warnings(result: RecoveredObjective) -> list[str]:
    """What makes a recovered objective untrustworthy, in words (empty when nothing does)."""
    out = []
    if result.saturation > MAX_SATURATION:
        out.append(f"{100 * result.saturation:.1f}% of the image's values are saturated (within 1e-3 of 0 or 1), so"
                   " its Jacobian is degenerate; realize with a smaller learning rate or fewer steps")
    if result.relative_gradient > FAR_FROM_OPTIMUM:
        out.append(f"the realization is not near an optimum of the recovered objective (relative gradient norm"
                   f" {result.relative_gradient:.3g} > {FAR_FROM_OPTIMUM}); optimize it further (Adam then L-BFGS,"
                   " no random transforms) before trusting the prediction")
    if result.response_cosine < MIN_RESPONSE_COSINE:
        out.append(f"the prediction points at units that barely respond to the image (cosine with the response"
                   f" {result.response_cosine:.3g} < {MIN_RESPONSE_COSINE}): a trivial solution such as dead units;"
                   " restrict the search to a critical space (invviz.ifv.critical_spaces)")
    if result.spectral_gap <= MIN_SPECTRAL_GAP:
        out.append(f"the two smallest singular values are not separated (ratio {result.spectral_gap:.3g}), so the"
                   " direction is not identified")
    return out


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angular distance in degrees between two vectors."""
    cos = (a.double() @ b.double()) / (a.double().norm() * b.double().norm())
    return float(torch.rad2deg(torch.arccos(cos.clamp(-1, 1))))
