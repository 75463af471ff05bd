"""The fine-tuning wrapper keeps the network: exact predictions through the head-null-space projection, LoRA
adapters, latents where information lives, and the command-line round trip."""

import math
import subprocess
import sys

import pytest
import torch
from conftest import flags_of, hooks_on, small_vit
from torch import nn

import invviz
from invviz.align import FeatureAligned, default_latent_layer, train_aligned
from invviz.models import Preprocessing, Probe
from invviz.models.zoo import FashionResNet
from invviz.training import TrainSchedule


def data(n=16, channels=1, size=28):
    torch.manual_seed(3)
    return torch.utils.data.DataLoader(torch.rand(n, channels, size, size), batch_size=8, shuffle=True,
                                       generator=torch.Generator())


@pytest.mark.parametrize("layer", ["layer3", "global_pool"])
def test_projection_keeps_the_predictions_exactly_while_the_latent_changes(layer):
    torch.manual_seed(0)
    net = FashionResNet(width=8).eval()
    flags, state = flags_of(net), {k: v.clone() for k, v in net.state_dict().items()}
    wrapped = FeatureAligned(net, layer)
    assert wrapped.preserve == "projection"
    x = torch.rand(32, 1, 28, 28)
    z0 = wrapped.encode(x)
    hist = train_aligned(wrapped, data(), schedule=TrainSchedule(max_steps=6), lr=3e-3, progress=False)
    if layer == "layer3":  # the pooled latent learns slowly; its exactness is what is tested here
        assert hist[-1]["recon"] < hist[0]["recon"]
    with torch.no_grad():
        original = net(Probe(net, [""]).model_input(x))
        kept = wrapped(x)
    assert torch.allclose(kept, original, atol=1e-4, rtol=1e-4)  # the outputs, not only the top-1
    assert not torch.allclose(wrapped.encode(x), z0, atol=1e-3)  # the latent did change
    head = list(net.fc.parameters())
    assert all(not p.requires_grad for p in wrapped.model.fc.parameters()) and len(head) == 2
    assert flags_of(net) == flags and hooks_on(net) == 0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())  # the user's model untouched


def test_a_deeper_latent_is_kept_by_distillation_and_lora_trains_only_adapters():
    torch.manual_seed(0)
    net = FashionResNet(width=8).eval()
    wrapped = FeatureAligned(net, "layer2")
    assert wrapped.preserve == "distill"
    hist = train_aligned(wrapped, data(), schedule=TrainSchedule(max_steps=3), lr=1e-3, progress=False)
    assert "distill" in hist[0] and torch.isfinite(torch.tensor(hist[-1]["loss"]))
    pytest.importorskip("peft")
    lora = FeatureAligned(net, "layer3", trainable="lora", lora_rank=2)
    trained = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained)
    train_aligned(lora, data(), schedule=TrainSchedule(max_steps=2), lr=1e-2, progress=False)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(lora(x), net(Probe(net, [""]).model_input(x)), atol=1e-4)


def test_latents_where_information_lives_and_the_result_says_which():
    import torchvision

    torch.manual_seed(0)
    dense = torchvision.models.densenet121().eval()  # pools functionally: no pooled module to name
    dense.invviz_preprocessing = Preprocessing(source="test")
    assert default_latent_layer(dense) == "features"
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    seq.invviz_preprocessing = Preprocessing(input_size=(3, 32, 32), source="test")
    assert default_latent_layer(seq) == "3"
    rec = invviz.invert(seq, torch.rand(1, 3, 32, 32), steps=3)
    assert rec.layer == default_latent_layer(seq, "invert") and rec.method == "optimization"
    vit = small_vit()
    vit.invviz_preprocessing = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True, source="test")
    w = FeatureAligned(vit, "blocks.1")
    x = torch.rand(2, 3, 64, 64)
    assert w.encode(x).shape[1] == Probe(vit, ["blocks.1"]).latent(x).shape[1] == 48 * 4 * 4  # no class token
    fused = [m.fused_attn for m in vit.modules() if hasattr(m, "fused_attn")]
    train_aligned(w, torch.utils.data.DataLoader(x, batch_size=2), schedule=TrainSchedule(max_steps=1),
                  progress=False)  # double backward
    assert [m.fused_attn for m in vit.modules() if hasattr(m, "fused_attn")] == fused


def test_the_line_search_sets_a_step_size_that_decodes():
    torch.manual_seed(0)
    wrapped = FeatureAligned(FashionResNet(width=8).eval(), "layer3")
    x = torch.rand(8, 1, 28, 28)
    grey = float(((x - 0.5) ** 2).mean())
    assert wrapped.calibrate(x) < grey  # better than the grey start
    assert float(wrapped.taus[0]) != 1.0


@pytest.mark.slow
def test_the_command_line_round_trip(tmp_path):
    aligned = tmp_path / "aligned.pt"
    out = subprocess.run([sys.executable, "-m", "invviz", "align", "resnet18", "--no-pretrained", "--data", "chelsea",
                          "--layer", "layer3", "--size", "64", "--steps", "2", "--batch", "4", "--no-progress",
                          "--out", str(aligned)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "layer3" in out.stdout
    png = tmp_path / "inverted.png"
    out = subprocess.run([sys.executable, "-m", "invviz", "invert", str(aligned), "chelsea", "--out", str(png)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "PSNR" in out.stdout and "feature alignment" in out.stdout and png.is_file()
    png2 = tmp_path / "optimized.png"
    out = subprocess.run([sys.executable, "-m", "invviz", "invert", "resnet18", "chelsea", "--no-pretrained",
                          "--steps", "3", "--size", "64", "--out", str(png2)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "optimization" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "ghostnet_100", "efficientnet_b0"])
def test_the_wrapper_trains_on_more_architectures_and_keeps_the_last_stage_exactly(name):
    """hardsigmoid/hardswish have no double backward in PyTorch: the wrapper computes them with ops that do while
    training; at the last spatial stage the predictions are kept exactly; the user's model is left as it was."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, num_classes=10).eval()
    net.invviz_preprocessing = Preprocessing(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 64, 64))
    flags, state = flags_of(net), {k: v.clone() for k, v in net.state_dict().items()}
    wrapped = FeatureAligned(net, size=64)
    # EfficientNet: the last spatial stage is bn2 (after the 1x1 head convolution), kept exactly; MobileNetV3's and
    # GhostNet's heads convolve after the pool, so their latents are kept by distillation
    assert (wrapped.layer, wrapped.preserve) == {"efficientnet_b0": ("bn2", "projection")}.get(
        name, (wrapped.layer, "distill"))
    images = torch.rand(4, 3, 64, 64)
    hist = train_aligned(wrapped, torch.utils.data.DataLoader(images, batch_size=2), schedule=TrainSchedule(max_steps=1),
                         progress=False)
    assert len(hist) == 1 and math.isfinite(hist[0]["recon"])
    if wrapped.preserve == "projection":
        with torch.no_grad():
            original = net(Probe(net, [""]).model_input(images))
            assert torch.allclose(wrapped(images), original, atol=1e-4, rtol=1e-4)
    assert flags_of(net) == flags and hooks_on(net) == 0 and hooks_on(wrapped) == 0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


def test_the_head_map_read_from_the_modules_is_the_measured_one():
    from invviz.align.wrapper import _pinv_wide

    torch.manual_seed(0)
    net = FashionResNet(width=8).eval()
    wrapped = FeatureAligned(net, "layer3")
    a = wrapped.head_a
    rows = []
    zr = torch.rand(1, a.shape[1], requires_grad=True)
    from invviz.align.wrapper import _run_with_latent

    x = wrapped.model_input(torch.full((1, 1, 28, 28), 0.5))
    with torch.enable_grad():
        out = _run_with_latent(wrapped.teacher, "layer3", x, zr, (32, 7, 7))
        for i in range(out.shape[1]):
            rows.append(torch.autograd.grad(out[0, i], zr, retain_graph=True)[0][0])
    assert torch.allclose(a, torch.stack(rows), atol=1e-6)
    wide = torch.randn(6, 40, dtype=torch.float64)
    wide[5] = wide[0] + wide[1]  # rank-deficient rows
    assert torch.allclose(_pinv_wide(wide), torch.linalg.pinv(wide, rtol=1e-6), atol=1e-10)
