import pytest
import torch
from conftest import flags_of, hooks_on, small_convnext, small_swin, small_vit
from torch import nn

import invviz
from invviz.errors import DeviceError, ImageSizeError, LayerNotFoundError, NonFiniteError, UnitIndexError
from invviz.models import Preprocessing
from invviz.optvis import channel, diversity


def rises(result, factor: float = 1.0) -> bool:
    h = result.history
    return bool((h[-5:].mean(0) > h[:5].mean(0) + factor * h[:5].abs().mean(0).clamp(min=1e-3)).all())


def test_objective_rises_and_model_is_untouched(resnet18):
    resnet18.train()  # the user's mode must come back
    resnet18.layer1[0].bn1.eval()
    resnet18.fc.weight.requires_grad_(False)
    before = flags_of(resnet18)
    weights = {k: v.clone() for k, v in resnet18.state_dict().items()}
    r = invviz.visualize(resnet18, "layer2", 3, steps=30, size=48, progress=False)
    assert rises(r)
    assert r.images.shape == (1, 3, 48, 48) and 0 <= float(r.images.min()) and float(r.images.max()) <= 1
    assert r.history.shape == (30, 1) and r.final.shape == (1,)
    assert flags_of(resnet18) == before and hooks_on(resnet18) == 0
    assert all(torch.equal(v, resnet18.state_dict()[k]) for k, v in weights.items())  # BN stats untouched
    assert all(p.grad is None for p in resnet18.parameters())  # no weight gradients computed


def test_list_of_units_renders_one_per_batch_element(resnet18):
    r = invviz.visualize(resnet18, "layer3", [0, 5, 9], steps=25, size=48, progress=False, snapshots=[10])
    assert r.images.shape == (3, 3, 48, 48) and r.history.shape == (25, 3)
    assert rises(r)
    assert set(r.snapshots) == {10}
    single = invviz.visualize(resnet18, "layer3", 5, steps=25, size=48, progress=False)
    assert not torch.allclose(single.final, r.final[1:2])  # ran with other random draws, still a real render


def test_same_seed_same_image(resnet18):
    a = invviz.visualize(resnet18, "layer2", 1, steps=6, size=40, seed=3, progress=False)
    b = invviz.visualize(resnet18, "layer2", 1, steps=6, size=40, seed=3, progress=False)
    c = invviz.visualize(resnet18, "layer2", 1, steps=6, size=40, seed=4, progress=False)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


@pytest.mark.parametrize("param", ["pixel", "fft", "maco"])
def test_every_parameterization_rises(resnet18, param):
    r = invviz.visualize(resnet18, "layer2", 7, steps=30, size=48, param=param, progress=False,
                         lr=0.05 if param != "pixel" else 0.2)
    assert rises(r, 0.3 if param == "maco" else 1.0)  # MaCo's fixed magnitude rises more slowly


@pytest.mark.parametrize("make, layer, factor", [
    (lambda: small_vit(), "blocks.1", 0.5),
    (lambda: small_vit(reg_tokens=4), "blocks.0.mlp.fc1", 0.5),
    (small_swin, "layers.1", 0.2),  # random-init transformers with LayerNorm rise slowly
    (small_swin, "layers.1.blocks.0.mlp.fc1", 0.2),  # tokens (B, 64, C) inside a Swin block: grid from the stage
    (small_convnext, "stages.2", 0.1),  # layer scale starts at 1e-6: random blocks barely move the stage
    (small_convnext, "stages.2.blocks.0.mlp.fc1", 0.1),  # a Linear on NHWC inside a ConvNeXt block
])
def test_architectures_channel_objective_rises(make, layer, factor):
    model = make()
    r = invviz.visualize(model, layer, [1, 2], steps=25, size=64, progress=False, lr=0.1, recipe="lucid")
    assert rises(r, factor)
    assert hooks_on(model) == 0


def test_pretrained_lite0_rises(lite0):
    r = invviz.visualize(lite0, "blocks.4", 7, steps=40, size=96, progress=False)
    assert rises(r, 2.0)
    assert float(r.final[0]) > 5.0


def test_fixed_input_size_model_is_resized():
    model = small_vit(img_size=64)  # timm ViT without dynamic size takes 64x64 only
    prep = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True)
    r = invviz.visualize(model, "blocks.1", 0, steps=4, size=40, progress=False, preprocessing=prep)
    assert r.images.shape == (1, 3, 40, 40)
    with pytest.raises(ImageSizeError, match="native"):
        invviz.visualize(model, "blocks.1", 0, steps=4, size=40, progress=False,
                         preprocessing=Preprocessing(input_size=(3, 64, 64)))
    assert hooks_on(model) == 0


def test_bad_input_errors_leave_model_intact(resnet18):
    before = flags_of(resnet18)
    with pytest.raises(UnitIndexError, match="256 channels"):
        invviz.visualize(resnet18, "layer3", 300, steps=3, size=32, progress=False)
    with pytest.raises(LayerNotFoundError, match="layer3"):
        invviz.visualize(resnet18, "layer_3", 0, steps=3, size=32, progress=False)
    tiny = nn.Sequential(nn.Conv2d(3, 4, 9), nn.ReLU())
    with pytest.raises(ImageSizeError, match="size the model takes"):
        invviz.visualize(tiny, "1", 0, steps=3, size=8, transforms="none", progress=False)
    assert hooks_on(tiny) == 0
    with pytest.raises(DeviceError, match="model.to"):
        invviz.visualize(resnet18, "layer3", 0, steps=3, size=32, device="meta", progress=False)
    assert flags_of(resnet18) == before and hooks_on(resnet18) == 0


def test_nan_activations_raise():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.log = nn.Identity()

        def forward(self, x):
            return self.log(torch.log(self.conv(x) - 100.0))

    model = Bad()
    with pytest.raises(NonFiniteError, match="NaN"):
        invviz.visualize(model, "log", 0, steps=3, size=16, progress=False)
    assert hooks_on(model) == 0 and all(p.requires_grad for p in model.parameters())


def test_diversity_makes_batch_differ(resnet18):
    obj = channel("layer3", 2) + 50.0 * diversity("layer3")
    r = invviz.visualize(resnet18, None, obj, steps=20, size=48, batch=2, progress=False)
    assert r.images.shape[0] == 2 and rises(r, 0.0)


def test_result_save_png(tmp_path, resnet18):
    r = invviz.visualize(resnet18, "layer2", [0, 1], steps=2, size=32, progress=False)
    path = r.save(tmp_path / "grid.png")
    from PIL import Image

    with Image.open(path) as im:
        assert im.size[1] == 32 + 4 and im.size[0] == 2 * 32 + 6


def test_render_takes_closure_optimizers_like_lbfgs(resnet18):
    import functools

    lbfgs = functools.partial(torch.optim.LBFGS, lr=1.0, max_iter=1, line_search_fn="strong_wolfe")
    r = invviz.visualize(resnet18, "layer2", 3, steps=8, size=32, param="pixel", transforms="none",
                         optimizer=lbfgs, progress=False)
    h = r.history[:, 0]
    assert bool((h[1:] >= h[:-1] - 1e-4).all()) and float(h[-1]) > float(h[0])  # strong Wolfe never goes down
    assert hooks_on(resnet18) == 0


def test_diversity_inside_a_render_makes_the_batch_differ(resnet18):
    """A render of the diversity term alone must lower the Gram similarity of the batch (a no-op term would leave
    the history flat and the images at their start)."""
    from invviz.optvis import channel

    start = invviz.visualize(resnet18, None, 0.0 * channel("layer2", 0), batch=2, steps=15, size=48, progress=False,
                             transforms="none", param="pixel", lr=0.2)
    div = invviz.visualize(resnet18, None, diversity("layer2"), batch=2, steps=15, size=48, progress=False,
                           transforms="none", param="pixel", lr=0.2)
    assert float(div.history[-1].sum()) > float(div.history[0].sum()) + 0.05
    gap = lambda r: float((r.images[0] - r.images[1]).abs().mean())  # noqa: E731
    assert gap(div) > 2 * gap(start)


def test_the_lucid_recipe_is_the_old_default_trajectory_bit_for_bit(resnet18):
    """recipe='lucid' is Lucid's exact recipe, as visualize's default was before the fast recipe: Adam 0.05 at a
    constant rate, the standard transforms chained, an FFT image from the seed."""
    from invviz.optvis import channel, make_param, render, standard_transforms

    got = invviz.visualize(resnet18, "layer2", [0, 1], steps=5, size=32, recipe="lucid", progress=False,
                           snapshots=[1, 3])
    rng = torch.Generator().manual_seed(0)
    param = make_param("fft", (32, 32), 2, rng)
    want = render(resnet18, channel("layer2", [0, 1]), param, transforms=standard_transforms(), steps=5, lr=0.05,
                  rng=rng, snapshots=[1, 3])
    assert torch.equal(got.images, want.images) and torch.equal(got.history, want.history)
    assert all(torch.equal(got.snapshots[k], want.snapshots[k]) for k in (1, 3))
    assert got.history.shape[0] == 5


def test_the_fast_default_beats_lucids_recipe_at_the_same_steps(resnet18):
    fast = invviz.visualize(resnet18, "layer3", [0, 1, 2, 3], steps=24, size=48, progress=False)
    lucid = invviz.visualize(resnet18, "layer3", [0, 1, 2, 3], steps=24, size=48, recipe="lucid", progress=False)
    assert float(fast.final.sum()) > float(lucid.final.sum())
    assert invviz.visualize(resnet18, "layer3", 0, size=32, steps=3, progress=False).history.shape[0] == 3
    with pytest.raises(invviz.errors.SettingError, match="recipe"):
        invviz.visualize(resnet18, "layer3", 0, steps=2, recipe="fastest")


def test_a_render_that_would_not_fit_on_the_gpu_says_which_batch_would(resnet18, monkeypatch):
    """The check before the first step on CUDA, run on the CPU with the device's memory figures stubbed: 100 MB free,
    one image measured at 30 MB -> a batch of 8 is refused and a batch of 3 (0.9 * 100 / 30) named."""
    from invviz.errors import DeviceMemoryError
    from invviz.optvis import make_param, make_transforms
    from invviz.optvis.render import _check_fits, batch_that_fits

    assert batch_that_fits(30e6, 100e6) == 3 and batch_that_fits(30e6, 10e6) == 0
    for name, fn in {"mem_get_info": lambda d=None: (100e6, 200e6), "synchronize": lambda d=None: None,
                     "reset_peak_memory_stats": lambda d=None: None, "empty_cache": lambda: None,
                     "memory_allocated": lambda d=None: 0, "max_memory_allocated": lambda d=None: 30e6}.items():
        monkeypatch.setattr(torch.cuda, name, fn)
    probe = invviz.Probe(resnet18, ["layer2"])
    rng = torch.Generator().manual_seed(0)
    param = make_param("fft", (32, 32), 8, rng)
    state = rng.get_state()
    with pytest.raises(DeviceMemoryError, match="batch=3"):
        _check_fits(probe, param, make_transforms("fused"), rng)
    assert torch.equal(rng.get_state(), state) and hooks_on(resnet18) == 0
    _check_fits(probe, make_param("fft", (32, 32), 2, rng), make_transforms("fused"), rng)


class _Hourglass(nn.Module):
    """Down by 2, up by 2, added to the input's features: like DLA's and HRNet's skips, it takes even sizes only."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.head = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        return self.head(f + self.up(self.down(f)))


def test_a_model_that_cannot_take_the_transformed_size_gets_the_size_asked_for():
    """Lucid's chained transforms pad and rescale (odd sizes on the way); a model with size-locked skips renders
    anyway: the probe fits each transformed size to the nearest size the model takes (so does a data pass)."""
    torch.manual_seed(0)
    net = _Hourglass().eval()
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 3, 33, 33))  # the model itself cannot
    feats = invviz.models.features(net, "head", torch.rand(1, 3, 33, 33), preprocessing=Preprocessing(source="test"))
    assert feats["head"].shape[2:] == net(torch.rand(1, 3, 32, 32)).shape[2:]
    r = invviz.visualize(net, "head", [0, 1], steps=6, size=32, recipe="lucid", progress=False,
                         preprocessing=Preprocessing(source="test"))
    assert r.images.shape == (2, 3, 32, 32) and torch.isfinite(r.history).all() and hooks_on(net) == 0
