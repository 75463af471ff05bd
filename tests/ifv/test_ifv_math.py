import math

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import hooks_on
from torch import nn

from invviz.errors import ObjectiveError
from invviz.ifv import (
    IFVObjective,
    Subspace,
    aggregate,
    aggregated_direction,
    angle_deg,
    co_kernel,
    complement,
    cosine_matrix,
    hoyer_sparseness,
    jacobian,
    merge_all,
    orthonormalize,
    principal_angles,
    recover_objective,
    sample_targets,
    slerp,
    solve,
)
from invviz.optvis import PixelImage


def test_jacobian_of_linear_map_is_its_weight():
    w = torch.randn(7, 12, dtype=torch.float64)
    v, jac = jacobian(lambda x: w @ x.reshape(-1), torch.randn(3, 4, dtype=torch.float64), chunk=3)
    assert torch.allclose(jac, w) and v.shape == (7,)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.Tanh(), nn.Conv2d(6, 5, 3), nn.Softplus()).double().eval()


@pytest.mark.parametrize("agg", ["maxpool_mean", "mean", "pick"])
def test_batched_vjps_equal_autograd_jacobian_float64(agg):
    net = small_net()
    x0 = torch.rand(1, 3, 9, 9, dtype=torch.float64)

    def fn(x):
        return aggregate(net(x), agg).reshape(-1)

    _, jac = jacobian(fn, x0, chunk=2)
    ref = torch.autograd.functional.jacobian(fn, x0).reshape(5, -1)
    assert torch.allclose(jac, ref, atol=1e-12)
    _, jac1 = jacobian(fn, x0, chunk=1, method="vmap")
    assert torch.allclose(jac1, jac, atol=1e-14)
    _, jac_vmap = jacobian(fn, x0, chunk=2, method="vmap")  # "auto" loops on CPU; both paths agree
    assert torch.allclose(jac_vmap, ref, atol=1e-12)
    with pytest.raises(ObjectiveError, match="method"):
        jacobian(fn, x0, method="fast")


def test_gradient_formula_with_cosine_matrix():
    """grad_xi <v, t> cos(v, t)^p = cos^p * J^T M t, checked against autograd (methods.md sec. 2)."""
    torch.manual_seed(1)
    w = torch.randn(6, 10, dtype=torch.float64)
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    theta = torch.randn(6, dtype=torch.float64)
    theta = theta / theta.norm()
    for p in (0.0, 1.0, 3.0):
        v = torch.tanh(w @ x)
        cos = (v @ theta) / v.norm()
        s = (v @ theta) * cos ** p
        (g,) = torch.autograd.grad(s, x)
        jac = torch.autograd.functional.jacobian(lambda t: torch.tanh(w @ t), x.detach())
        formula = cos.detach() ** p * jac.T @ cosine_matrix(v.detach(), p) @ theta
        assert torch.allclose(g, formula, atol=1e-12)


@pytest.mark.parametrize("p", [0.0, 1.0, 2.0])
def test_solve_recovers_a_planted_direction(p):
    torch.manual_seed(2)
    k, n = 8, 40
    theta = torch.rand(k, dtype=torch.float64)
    theta /= theta.norm()
    v = theta + 0.3 * torch.rand(k, dtype=torch.float64)
    w = cosine_matrix(v, p) @ theta
    w /= w.norm()
    jac = (torch.eye(k, dtype=torch.float64) - torch.outer(w, w)) @ torch.randn(k, n, dtype=torch.float64)
    res = solve(jac, v, p, target=theta)
    assert angle_deg(res.direction, theta) < 1e-4
    assert float(res.singular_values[0] / res.singular_values[-1]) < 1e-6 and res.relative_gradient < 1e-8  # eigh of A A^T squares
    assert abs(abs(float(res.target_coefficients[0])) - 1) < 1e-8
    # the same, searched inside a critical space that contains theta
    basis = orthonormalize(torch.stack([theta, torch.randn(k, dtype=torch.float64), torch.randn(k, dtype=torch.float64)], 1))
    assert angle_deg(solve(jac, v, p, basis).direction, theta) < 1e-4
    with pytest.raises(ObjectiveError, match="dimension 0"):
        solve(jac, v, p, basis[:, :0])


class Anchors(nn.Module):
    """Features v_c = 2 - mean squared distance of the image to anchor image c: the optimum of any positive
    direction is an interior image (a weighted mean of anchors), so Grad-IFV has a unique answer."""

    def __init__(self, k: int = 5, size: int = 8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.anchors = nn.Parameter(0.25 + 0.5 * torch.rand(k, 3, size, size, generator=g))
        self.out = nn.Identity()

    def forward(self, x):
        return self.out(2.0 - ((x[:, None] - self.anchors[None]) ** 2).mean(dim=(2, 3, 4)))  # (B, k)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_recover_objective_of_a_realization_on_a_small_model(p):
    """Optimize a pixel image for a known direction (Adam, then L-BFGS), then recover the direction from it."""
    from invviz.models import Capture, Preprocessing

    net = Anchors().eval()
    net.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3)
    theta = torch.tensor([0.6, 0.1, 0.5, 0.5, 0.3])
    theta /= theta.norm()
    param = PixelImage(8, 1, sd=0.1, rng=torch.Generator().manual_seed(0))
    obj = aggregated_direction("out", theta, form=IFVObjective(cossim_pow=p, aggregation="mean"))  # the paper's objective
    net.anchors.requires_grad_(False)
    opt = torch.optim.LBFGS(param.parameters(), lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")
    with Capture(net, ["out"]) as cap:
        def closure():
            opt.zero_grad()
            loss = -obj(cap.run(param()))[0]
            loss.backward()
            return loss
        for _ in range(3):
            opt.step(closure)
    net.anchors.requires_grad_(True)
    res = recover_objective(net, "out", param, form=IFVObjective(cossim_pow=p, aggregation="mean"), target=theta)
    assert angle_deg(res.direction, theta) < 0.5
    assert angle_deg(res.response, theta) > 5 * angle_deg(res.direction, theta)  # better than the feature response
    assert hooks_on(net) == 0 and net.anchors.requires_grad
    with pytest.raises(ObjectiveError):
        recover_objective(net, "out", param, form=IFVObjective(cossim_pow=-1.0))


def test_principal_angles_match_scipy_including_tiny_angles():
    rng = np.random.default_rng(0)
    a = np.linalg.qr(rng.standard_normal((30, 5)))[0]
    for eps in (1e-8, 1e-3, 0.5):
        b = np.linalg.qr(a + eps * rng.standard_normal((30, 5)))[0]
        b = np.linalg.qr(np.concatenate([b[:, :3], rng.standard_normal((30, 1))], 1))[0]
        ref = np.sort(scipy.linalg.subspace_angles(a, b))
        got, p, q = principal_angles(torch.tensor(a), torch.tensor(b))
        # scipy re-orthonormalizes its inputs, which moves angles of ~4e-8 by up to ~5e-9 (BLAS-dependent): the
        # exact oracle for tiny angles is the constructed case below
        assert np.allclose(np.sort(got.numpy()), ref, atol=1e-8, rtol=1e-6)
        assert torch.allclose(p.T @ p, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_principal_angles_are_exact_on_subspaces_built_at_known_angles():
    """Columns `a_i cos t_i + c_i sin t_i` (c orthonormal and orthogonal to a) span a subspace at exactly the angles t:
    sines keep the tiny ones accurate, where arccos of cosines would be off by ~1e-8."""
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((30, 8)))[0]
    a, c = basis[:, :4], basis[:, 4:]
    angles = np.array([4e-8, 1e-5, 0.5, 1.2])
    b = a * np.cos(angles) + c * np.sin(angles)
    got, _, _ = principal_angles(torch.tensor(a), torch.tensor(b))
    assert np.allclose(np.sort(got.numpy()), angles, atol=1e-13, rtol=1e-9)


def test_slerp_keeps_unit_norm_and_endpoints():
    p = torch.nn.functional.normalize(torch.randn(10, 4, dtype=torch.float64), dim=0)
    q = torch.nn.functional.normalize(torch.randn(10, 4, dtype=torch.float64), dim=0)
    for t in (0.0, 0.3, 0.5, 1.0):
        out = slerp(p, q, t)
        assert torch.allclose(out.norm(dim=0), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(slerp(p, q, 0.0), p) and torch.allclose(slerp(p, q, 1.0), q)
    mid = slerp(p, q, 0.5)
    assert torch.allclose((mid * p).sum(0), (mid * q).sum(0))  # equal angle to both ends
    assert torch.allclose(slerp(p, p, 0.4), p)


def test_merging_noisy_co_kernels_finds_planted_directions():
    torch.manual_seed(4)
    k = 20
    planted = orthonormalize(torch.randn(k, 2, dtype=torch.float64))
    spaces = []
    for _ in range(9):
        a = torch.randn(k, 60, dtype=torch.float64)
        a = a - planted @ (planted.T @ a) + 1e-5 * torch.randn(k, 60, dtype=torch.float64)  # planted ~ co-kernel
        spaces.append(Subspace(co_kernel(a, eps=1e-3)))
    assert all(s.dim == 2 for s in spaces)
    merged = merge_all(spaces)
    angles, _, _ = principal_angles(merged.basis, planted)
    assert merged.dim == 2 and merged.count == 9 and float(angles.max()) < math.radians(0.01)
    crit = complement(merged.basis)
    assert crit.shape == (k, k - 2) and float((crit.T @ merged.basis).abs().max()) < 1e-10
    assert torch.allclose(crit.T @ crit, torch.eye(k - 2, dtype=torch.float64), atol=1e-10)


def test_hoyer_targets_have_the_drawn_sparseness():
    g = torch.Generator().manual_seed(0)
    targets, h = sample_targets(50, 40, rng=g)
    assert targets.shape == (90, 50) and (targets >= 0).all()
    assert torch.allclose(targets.norm(dim=1), torch.ones(90), atol=1e-5)
    assert torch.allclose(h[-50:], torch.ones(50), atol=1e-5)  # canonical vectors
    g = torch.Generator().manual_seed(0)
    drawn = torch.rand(40, generator=g, dtype=torch.float64)
    assert torch.allclose(h[:40].double(), drawn, atol=1e-4)
    assert float(hoyer_sparseness(torch.ones(9))) == pytest.approx(0.0, abs=1e-7)


def test_image_realizations_are_checked():
    from invviz.errors import ImageSizeError
    from invviz.ifv import pixel_realization

    img = torch.rand(3, 8, 8)
    assert torch.allclose(pixel_realization(img)(), img[None], atol=1e-5)
    for bad in (img * 2, torch.rand(2, 3, 8, 8), (img * 255).byte(), torch.rand(8, 8)):
        with pytest.raises(ImageSizeError):
            pixel_realization(bad)
