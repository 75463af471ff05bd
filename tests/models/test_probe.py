"""The one probe: images in [0, 1] -> features, owning normalization, resize, dtype, frozen state and errors."""

import pytest
import torch
from conftest import flags_of, hooks_on, small_vit
from torch import nn

from invviz.errors import ImageSizeError, LayerNotFoundError, ModelTypeError
from invviz.models import Preprocessing, Probe, check_images


def tiny() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.Flatten(),
                        nn.LazyLinear(5))
    net(torch.zeros(1, 3, 16, 16))
    net.invviz_preprocessing = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), input_size=(3, 16, 16))
    return net.eval()


def test_probe_normalizes_inside_and_matches_the_forward():
    net = tiny()
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    with Probe(net, ["0", "2", ""]) as probe:
        f = probe(x)
    assert torch.allclose(f["0"], net[0]((x - mean) / std), atol=1e-6)
    assert torch.allclose(f[""].flatten(1), net((x - mean) / std), atol=1e-6)
    assert probe.channels("2") == 6 and probe.channels_in == 3


def test_probe_takes_the_models_dtype_and_restores_its_state():
    net = tiny().double().train()
    flags = flags_of(net)
    with Probe(net, ["2"]) as probe:
        f = probe(torch.rand(1, 3, 16, 16))  # float32 images in
        assert f["2"].dtype == torch.float64 and not net.training and not any(p.requires_grad for p in net.parameters())
    assert flags_of(net) == flags and hooks_on(net) == 0


def test_probe_resizes_for_a_model_that_takes_one_size():
    vit = small_vit()  # 64 px only
    prep = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True)
    with torch.no_grad():
        f = Probe(vit, ["blocks.1"], preprocessing=prep)(torch.rand(1, 3, 40, 40))
    assert tuple(f["blocks.1"].shape) == (1, 48, 4, 4)
    with pytest.raises(ImageSizeError, match="native 64x64"):  # without the preprocessing that says so
        Probe(vit, ["blocks.1"], preprocessing=Preprocessing(input_size=(3, 64, 64)))(torch.rand(1, 3, 40, 40))


class Skip(nn.Module):
    """A skip connection across a stride-`stride` down- and up-sampling: only multiples of `stride` line up (as DLA's
    and HRNet's skips)."""

    def __init__(self, stride: int = 16) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 4, stride, stride=stride)
        self.up = nn.Upsample(scale_factor=stride)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x) + self.up(self.down(x))


def test_probe_fits_a_size_the_model_cannot_take_to_the_nearest_multiple_it_takes():
    torch.manual_seed(0)
    net = Skip(16).eval()
    probe = Probe(net, preprocessing=Preprocessing(input_size=(3, 32, 32)))
    x = torch.rand(2, 3, 37, 37)
    with torch.no_grad():
        f = probe.reading("")(x)[""]
        want = net(probe.normalize(nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)))
    assert f.shape == (2, 4, 32, 32) and torch.allclose(f, want, atol=1e-6)
    assert probe._multiple == [16]  # found once; the next size goes to its multiple of 16 at once
    assert probe.model_input(torch.rand(1, 3, 37, 37)).shape[2:] == (32, 32)  # the path captum's attribution takes
    with torch.no_grad(), pytest.raises(ImageSizeError, match="could not take images of 6x6"):  # too far from 16
        probe.reading("")(torch.rand(1, 3, 6, 6))


def test_a_multiple_that_fitted_one_size_is_tried_first_not_alone():
    """Multiples of 32 only: 37 px fits to 32 (found with the multiple 16); 52 px, whose nearest multiple of 16 (48)
    the model cannot take, still fits (to 64, the nearest multiple of 32)."""
    torch.manual_seed(0)
    probe = Probe(Skip(32).eval(), preprocessing=Preprocessing(input_size=(3, 32, 32))).reading("")
    with torch.no_grad():
        assert probe(torch.rand(1, 3, 37, 37))[""].shape[2:] == (32, 32)
        assert probe(torch.rand(1, 3, 52, 52))[""].shape[2:] == (64, 64)


def test_bad_inputs_are_typed_errors():
    net = tiny()
    probe = Probe(net, ["2"])
    with pytest.raises(ImageSizeError, match="channel"):
        probe(torch.rand(1, 1, 16, 16))
    with pytest.raises(ImageSizeError, match="too small"):
        probe(torch.rand(1, 3, 2, 2))
    with pytest.raises(LayerNotFoundError):
        Probe(net, [3])
    with pytest.raises(ModelTypeError, match="load_model"):
        Probe("resnet18", ["layer1"])
    with pytest.raises(ModelTypeError):
        Probe(object(), ["layer1"])
    for bad, match in [(torch.full((1, 3, 4, 4), float("nan")), "NaN"), (torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
                                                                         "255"),
                       (torch.randn(1, 3, 4, 4) * 2, "normalized"), (torch.rand(1, 1, 4, 4), "expand"),
                       ([[0.5]], "tensor"), (torch.rand(2, 2), "shape")]:
        with pytest.raises(ImageSizeError, match=match):
            check_images(bad, channels=3)
    assert hooks_on(net) == 0


def test_a_model_without_preprocessing_warns_once():
    net = nn.Sequential(nn.Conv2d(3, 2, 1)).eval()
    with pytest.warns(UserWarning, match="preprocessing="):
        Probe(net, ["0"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Probe(net, ["0"])  # once per model
