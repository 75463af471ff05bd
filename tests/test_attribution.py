import pytest
import torch
import torch.nn.functional as F
from conftest import hooks_on

import invviz
from invviz.data import load_photo
from invviz.errors import ImageSizeError
from invviz.models import Capture, preprocessing_of


def test_top_units_equal_gradient_times_activation(lite0):
    image = F.interpolate(load_photo("chelsea")[None], size=128, mode="bilinear", antialias=True)
    res = invviz.top_units(lite0, "blocks.5", image, k=5)
    assert res.target in (281, 282, 285) and len(res.units) == 5
    assert torch.all(res.scores[:-1] >= res.scores[1:])
    # oracle: sum over space of activation * d logit / d activation, computed here with autograd
    with Capture(lite0, ["blocks.5", ""], stop_early=False, clone=False) as cap:  # the tensor on the path
        feats = cap.run(preprocessing_of(lite0).normalize(image), raw=True)
    act = feats["blocks.5"]
    grad, = torch.autograd.grad(feats[""][0, res.target], act)
    ref = (act * grad).sum(dim=(2, 3))[0]
    assert torch.allclose(res.all_scores, ref, rtol=1e-3, atol=1e-4)
    assert res.units == ref.argsort(descending=True)[:5].tolist()
    assert hooks_on(lite0) == 0


def test_top_units_integrated_gradients_and_errors(resnet18):
    image = torch.rand(3, 32, 32)
    res = invviz.top_units(resnet18, "layer3", image, target=5, method="integrated_gradients", steps=4, k=3)
    assert res.target == 5 and len(res.units) == 3 and res.all_scores.shape == (256,)
    with pytest.raises(ImageSizeError):
        invviz.top_units(resnet18, "layer3", image * 3)
    with pytest.raises(ImageSizeError):
        invviz.top_units(resnet18, "layer3", torch.rand(32, 32))


def test_all_zero_attributions_are_named_not_ranked():
    """A zero-initialized head (timm's untrained MLP-Mixer) makes every attribution exactly 0: top_units says so."""
    import warnings

    import torch
    from torch import nn

    import invviz
    from invviz.models import Preprocessing

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    nn.init.zeros_(net[4].weight)
    net.invviz_preprocessing = Preprocessing(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 16, 16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        invviz.top_units(net, "0", torch.rand(3, 16, 16), k=2)
    assert any("exactly 0" in str(w.message) for w in caught)


def test_unit_heatmap_is_input_times_gradient_of_the_units_mean():
    """On a 1x1 convolution the unit's mean is linear in the image: the heat map is |x_c * w_c / (H W)| summed over
    colour (with the normalization's 1/std folded into w), up to the scale to [0, 1]."""
    import torch
    from torch import nn

    from invviz.attribution import unit_heatmap
    from invviz.models import Preprocessing, Probe

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 1, bias=False).double()
    probe = Probe(conv, preprocessing=Preprocessing(mean=(0.0,) * 3, std=(0.5,) * 3, source="test"))
    x = torch.rand(3, 6, 5, dtype=torch.float64)
    direction = torch.tensor([0.3, -0.7], dtype=torch.float64)
    w = (direction @ conv.weight[:, :, 0, 0].detach()) / 0.5  # (3,): d unit / d x_c per pixel, times H W
    want = (x * w[:, None, None]).abs().sum(0)
    got = unit_heatmap(probe, "", direction, x)
    assert torch.allclose(got.double(), want / want.max(), atol=1e-6)
    assert torch.allclose(unit_heatmap(probe, "", lambda c: torch.eye(c)[1].double(), x),
                          unit_heatmap(probe, "", torch.tensor([0.0, 1.0]), x))
