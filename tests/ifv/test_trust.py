"""Grad-IFV says when its answer is not trustworthy (regressions of confident wrong answers), and takes the model's
dtype and the fixed-size models' resize from the one probe."""

import warnings

import pytest
import torch
from conftest import small_vit
from torch import nn

from invviz.ifv import IFVObjective, angle_deg, match, pixel_realization, realize, recover_objective
from invviz.models import Preprocessing


class Planted(nn.Module):
    """Six feature maps: units 0..2 respond `2 - mean_c (x - a_k)^2` (an interior optimum exists), units 3..5 are
    dead (`relu` of a bias of -100: zero output, zero gradient), as ReLU networks' dead units are."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.anchors = nn.Parameter(torch.rand(3, 3, 1, 1) * 0.6 + 0.2)
        self.dead = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.dead.bias.fill_(-100.0)
        self.act = nn.ReLU()
        self.out = nn.Identity()
        self.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 16, 16))

    def forward(self, x):
        live = 2.0 - ((x[:, None] - self.anchors[None]) ** 2).mean(dim=2)  # (B, 3, H, W)
        return self.out(torch.cat([live, self.act(self.dead(x))], dim=1))


def test_a_trivial_direction_is_flagged_and_match_sets_it_aside():
    """Dead units make J^T theta vanish for every image: the unrestricted solution is a dead unit (90 deg from any
    real target). Before, it came back with no warning; now `recover_objective` warns and `match` reports the best
    non-trivial direction with `trivial=True`."""
    net = Planted().eval()
    target = torch.tensor([1.0, 0.5, 0.2, 0.0, 0.0, 0.0])
    real = realize(net, "out", target, form=IFVObjective(aggregation="mean"), size=16, adam_steps=60, lbfgs_steps=20)
    with pytest.warns(UserWarning, match="barely respond"):
        rec = recover_objective(net, "out", real.element(0), form=IFVObjective(aggregation="mean"), points=1)
    assert not rec.trusted and rec.response_cosine < 0.1
    assert float(rec.direction[3:].abs().sum()) > 0.99  # the trivial answer: dead units
    with pytest.warns(UserWarning, match="trivial"):
        m = match(net, "out", target, net, "out", size=16, adam_steps=60, lbfgs_steps=20, reopt_steps=5, points=1,
                  form=IFVObjective(aggregation="mean"))
    assert m.trivial and m.excluded == 3 and set(m.top_units[:3]) == {0, 1, 2}
    assert angle_deg(m.direction, target) < angle_deg(rec.direction, target)


def test_a_saturated_image_is_flagged():
    net = Planted().eval()
    image = (torch.rand(3, 16, 16) > 0.5).float()  # every sigmoid saturated
    with pytest.warns(UserWarning, match="saturated"):
        rec = recover_objective(net, "out", image, form=IFVObjective(aggregation="mean"), points=1)
    assert rec.saturation > 0.99 and not rec.trusted


def test_a_good_realization_is_trusted():
    net = Planted().eval()
    target = torch.tensor([1.0, 0.5, 0.2, 0.0, 0.0, 0.0])
    real = realize(net, "out", target, form=IFVObjective(aggregation="mean"), size=16, adam_steps=200, lbfgs_steps=50)
    from invviz.ifv import critical_space  # noqa: F401 - the restricted search is the fix for dead units

    basis = torch.eye(6)[:, :3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = recover_objective(net, "out", real.element(0), form=IFVObjective(aggregation="mean"), points=1, critical_space=basis)
    assert rec.trusted and angle_deg(rec.direction, target) < 2.0


def test_a_float64_model_is_differentiated_in_float64():
    net = Planted().double().eval()
    image = torch.rand(3, 16, 16) * 0.8 + 0.1  # float32 image, float64 model: no dtype error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = recover_objective(net, "out", image, form=IFVObjective(aggregation="mean"), points=1)
        p = pixel_realization(image.double())
        rec64 = recover_objective(net, "out", p, form=IFVObjective(aggregation="mean"), points=1)
    assert rec.direction.shape == (6,) and torch.allclose(rec.direction, rec64.direction, atol=1e-5)


def test_ifv_on_a_fixed_size_vit_at_another_size():
    """Before, realize on a 64-px-only ViT at 48 px crashed after the Adam phase (the gradient check fed the image
    unresized), and match's 128 px default hit the same."""
    vit = small_vit()
    vit.invviz_preprocessing = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True, source="test")
    target = torch.rand(48)
    real = realize(vit, "blocks.1", target, size=48, adam_steps=3, lbfgs_steps=1)
    assert real.grad_norm.shape == (1,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = match(vit, "blocks.1", 3, vit, "blocks.1", adam_steps=2, lbfgs_steps=1, reopt_steps=1, points=1)
    assert m.direction.shape == (48,) and m.image.shape == (1, 3, 128, 128)


def test_the_multi_point_solver_is_the_default():
    import inspect

    assert inspect.signature(recover_objective).parameters["points"].default == 9
