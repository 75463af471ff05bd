"""Realizations (Adam then L-BFGS), multi-point Jacobians, the critical-space search and re-optimization."""

import math
import warnings

import pytest
import torch
from conftest import hooks_on
from test_ifv_math import Anchors

from invviz.errors import ObjectiveError
from invviz.ifv import (
    IFVObjective,
    angle_deg,
    critical_space,
    critical_spaces,
    orthonormalize,
    principal_angles,
    realize,
    recover_objective,
    reoptimize,
    solve,
)
from invviz.ifv.recover import offsets
from invviz.models import Preprocessing
from invviz.optvis.param import ImageParam


def anchors_net(size: int = 8) -> Anchors:
    net = Anchors(size=size).eval()
    net.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3)
    return net


def test_realize_then_recover_on_a_small_model():
    net = anchors_net(12)
    weights = net.anchors.detach().clone()
    targets = torch.tensor([[0.6, 0.1, 0.5, 0.5, 0.3], [0.1, 0.9, 0.2, 0.0, 0.4]])
    targets = targets / targets.norm(dim=1, keepdim=True)
    real = realize(net, "out", targets, form=IFVObjective(cossim_pow=1.0, aggregation="mean"), size=12, adam_steps=15,
                   lbfgs_steps=60, lr=0.1)
    assert real.images.shape == (2, 3, 12, 12) and real.param.batch == 2
    assert (real.grad_norm < 0.1 * real.grad_norm_adam).all()  # L-BFGS tightens the optimum Adam reached
    for i in range(2):
        res = recover_objective(net, "out", real.element(i), form=IFVObjective(cossim_pow=1.0, aggregation="mean"))
        assert angle_deg(res.direction, targets[i]) < 1.0
    assert hooks_on(net) == 0 and net.anchors.requires_grad and torch.equal(net.anchors, weights)
    # re-optimizing under the true targets leaves the images as they are; under swapped targets it does not
    same, _ = reoptimize(net, "out", real.param, targets, form=IFVObjective(aggregation="mean"), steps=30)
    swapped, _ = reoptimize(net, "out", real.param, targets.flip(0), form=IFVObjective(aggregation="mean"), steps=30)
    assert (same > 0.99).all() and (swapped < same).all()


def test_realize_continues_an_optimized_param_with_lbfgs_only():
    net = anchors_net(12)
    theta = torch.tensor([0.6, 0.1, 0.5, 0.5, 0.3])
    first = realize(net, "out", theta, form=IFVObjective(aggregation="mean"), size=12, adam_steps=15, lbfgs_steps=0, lr=0.1)
    start = first.param().detach().clone()
    more = realize(net, "out", theta, form=IFVObjective(aggregation="mean"), param=first.param, adam_steps=0, lbfgs_steps=40)
    assert more.param is first.param  # the same parameterization, optimized further in place
    assert torch.allclose(more.grad_norm_adam, first.grad_norm)  # the norm it started from
    assert (more.grad_norm < 0.1 * first.grad_norm).all() and not torch.equal(more.images, start.cpu())
    with pytest.raises(ObjectiveError, match="at least one step"):
        realize(net, "out", theta, adam_steps=0, lbfgs_steps=0)


def test_multi_point_jacobian_with_zero_radius_is_the_plain_one():
    net = anchors_net()
    theta = torch.tensor([0.6, 0.1, 0.5, 0.5, 0.3])
    real = realize(net, "out", theta, form=IFVObjective(aggregation="mean"), size=8, adam_steps=50, lbfgs_steps=20, lr=0.1)
    plain = recover_objective(net, "out", real.element(0), form=IFVObjective(aggregation="mean"))
    multi = recover_objective(net, "out", real.element(0), form=IFVObjective(aggregation="mean"), points=3, radius=0.0)
    assert angle_deg(plain.direction, multi.direction) < 1e-3
    smooth = recover_objective(net, "out", real.element(0), form=IFVObjective(aggregation="mean"), points=4, radius=0.05)
    assert angle_deg(smooth.direction, theta) < 2.0
    with pytest.raises(ObjectiveError, match="points"):
        recover_objective(net, "out", real.element(0), points=0)


class RawImage(ImageParam):
    """The free variables are the image itself (no sigmoid), so the Anchors response is quadratic in them."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__(image.shape[-1], 1, decorrelate=False)
        self.pixels = torch.nn.Parameter(image.clone())

    def forward(self) -> torch.Tensor:
        return self.pixels


def test_antithetic_offsets_cancel_the_first_order_change_of_the_jacobian():
    """For a response quadratic in the free variables J is linear in them: the mean of J over the realization and
    +d/-d pairs is exactly J at the realization, and over independent offsets it is not."""
    shifts = offsets(torch.zeros(2, 3), 5, 0.1, seed=1)
    assert len(shifts) == 5 and torch.equal(shifts[0], -shifts[1]) and torch.equal(shifts[2], -shifts[3])
    assert len(offsets(torch.zeros(2, 3), 3, 0.1, antithetic=False)) == 3
    net = anchors_net()
    image = 0.25 + 0.5 * torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random image is no optimum; only the Jacobians matter here
        plain, anti, iid = (recover_objective(net, "out", RawImage(image), **kw, form=IFVObjective(cossim_pow=0.0, aggregation="mean"))
                            for kw in ({}, {"points": 5, "radius": 0.3},
                                       {"points": 5, "radius": 0.3, "antithetic": False}))
    assert torch.allclose(anti.singular_values, plain.singular_values, rtol=1e-4)
    assert angle_deg(anti.direction, plain.direction) < 1e-2
    assert (iid.singular_values - plain.singular_values).abs().max() > 1e-2 * plain.singular_values.max()


def planted_samples(k=12, planted_dim=2, n_samples=8, noise=1e-6, seed=0):
    g = torch.Generator().manual_seed(seed)
    planted = orthonormalize(torch.randn(k, planted_dim, generator=g, dtype=torch.float64))
    out = []
    for _ in range(n_samples):
        a = torch.randn(k, 50, generator=g, dtype=torch.float64)
        a = a - planted @ (planted.T @ a) + noise * torch.randn(k, 50, generator=g, dtype=torch.float64)
        v = torch.rand(k, generator=g, dtype=torch.float64)
        out.append(solve(a, v, 0.0))  # p = 0: A_j = J_j
    return planted, out


def test_critical_space_finds_planted_trivial_solutions():
    planted, samples = planted_samples()
    crit = critical_space(samples, 1e-3)
    assert crit.dim == 10 and crit.kernel.shape == (12, 2)
    angles, _, _ = principal_angles(crit.kernel.double(), planted)
    assert math.degrees(float(angles.max())) < 0.01
    assert float((crit.basis.double().T @ planted).abs().max()) < 1e-4


def test_nested_intervals_list_each_distinct_space_once():
    _, samples = planted_samples(noise=1e-6)
    spaces = critical_spaces(samples, eps_low=1e-8, eps_high=0.5)
    dims = [s.dim for s in spaces]
    assert dims == sorted(dims, reverse=True) and len(set(dims)) == len(dims)
    assert 10 in dims
    ten = spaces[dims.index(10)]
    # the planted co-kernel holds from above the noise level (1e-6 relative) to where real singular values start
    assert ten.eps_low < 1e-4 < ten.eps_high and ten.eps_low <= ten.eps_high
    for s in spaces:
        assert torch.allclose(s.basis.T @ s.basis, torch.eye(s.dim), atol=1e-5)


def test_critical_space_input_checks():
    _, samples = planted_samples()
    with pytest.raises(ObjectiveError, match="eps"):
        critical_space(samples, 1.5)
    with pytest.raises(ObjectiveError):
        critical_space([], 1e-3)
    restricted = solve(torch.randn(4, 9, dtype=torch.float64), torch.rand(4, dtype=torch.float64), 0.0,
                       basis=torch.eye(4, dtype=torch.float64)[:, :2])
    with pytest.raises(ObjectiveError, match="without a critical space"):
        critical_space([restricted], 1e-3)
    dead = [solve(torch.zeros(3, 5, dtype=torch.float64), torch.rand(3, dtype=torch.float64), 0.0)]  # dead layer
    with pytest.raises(ObjectiveError, match="dimension 0"):
        critical_space(dead, 1e-3)


def test_match_recovers_a_channel_permutation():
    """B is A with the channels of its feature layer permuted (and the next layer's inputs permuted back, so B
    computes the same function): matching channel c of A must return channel perm^-1(c) of B."""
    from torch import nn

    from invviz.ifv import match

    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 5, 3, padding=1), nn.Softplus(),
                      nn.Conv2d(5, 4, 1))
    a.invviz_preprocessing = Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3)
    perm = torch.tensor([3, 0, 4, 1, 2])  # B's channel i is A's channel perm[i]
    b = nn.Sequential(*[m for m in __import__("copy").deepcopy(a)])
    b.invviz_preprocessing = a.invviz_preprocessing
    with torch.no_grad():
        b[2].weight.copy_(a[2].weight[perm])
        b[2].bias.copy_(a[2].bias[perm])
        b[4].weight.copy_(a[4].weight[:, perm])
    x = torch.rand(2, 3, 12, 12)
    assert torch.allclose(a(x), b(x), atol=1e-5)
    res = match(a, "3", 2, b, "3", size=12, adam_steps=200, lbfgs_steps=50, reopt_steps=20, top=2)
    assert res.top_units[0] == int((perm == 2).nonzero()) and res.direction.shape == (5,)
    assert res.ssim > 0.95 and res.sparseness > 0.9
