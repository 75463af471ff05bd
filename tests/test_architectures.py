"""Every method on a convnet, a ViT, a Swin and a ConvNeXt, at a size none of them was built for.

Each method reaches the model through the one probe, so a fixed-size ViT or Swin is resized for every method alike
(before it was resized for rendering only), and the model is left as it was (no hooks, same flags).
"""

import pytest
import torch
from conftest import flags_of, hooks_on, small_convnext, small_swin, small_vit

import invviz
from invviz.align import FeatureAligned, train_aligned
from invviz.ifv import realize, recover_objective
from invviz.models import Preprocessing, Probe
from invviz.optvis import channel
from invviz.priors import CompactGenerator, dgn_am, ppgn_h
from invviz.training import TrainSchedule


def resnet():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    net.invviz_preprocessing = Preprocessing(source="test")
    return net


def vit():  # a timm ViT that takes 64 px only
    net = small_vit()
    net.invviz_preprocessing = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True, source="test")
    return net


def swin():
    net = small_swin()
    net.invviz_preprocessing = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True, source="test")
    return net


def convnext():
    net = small_convnext()
    net.invviz_preprocessing = Preprocessing(source="test")
    return net


ARCHS = [(resnet, "layer2"), (vit, "blocks.1"), (swin, "layers.1"), (convnext, "stages.1")]
SIZE = 48  # native: 224 (ResNet, ConvNeXt) or 64 (ViT, Swin)


@pytest.mark.parametrize("make, layer", ARCHS, ids=["resnet", "vit", "swin", "convnext"])
def test_every_method_runs_at_a_non_native_size(make, layer):
    model = make()
    flags = flags_of(model)
    r = invviz.visualize(model, layer, [0, 1], steps=2, size=SIZE, progress=False)
    assert r.images.shape == (2, 3, SIZE, SIZE)
    k = Probe(model, [layer]).channels(layer, SIZE)
    target = torch.zeros(k)
    target[:3] = 1.0
    real = realize(model, layer, target, size=SIZE, adam_steps=3, lbfgs_steps=1)
    rec = recover_objective(model, layer, real.element(0), points=1)
    assert rec.direction.shape == (k,) and torch.isfinite(rec.singular_values).all()
    gen = CompactGenerator(code_dim=16, size=32, width=8).eval()
    assert dgn_am(model, gen, channel(layer, 0), steps=2, size=SIZE).images.shape == (1, 3, SIZE, SIZE)
    assert ppgn_h(model, gen, lambda h: h, 3, steps=2, size=SIZE).probability.shape == (2, 1)
    wrapped = FeatureAligned(model, layer, size=SIZE)
    data = torch.utils.data.DataLoader(torch.rand(4, 3, SIZE, SIZE), batch_size=2)
    hist = train_aligned(wrapped, data, schedule=TrainSchedule(max_steps=1), progress=False)
    assert len(hist) == 1 and all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in hist)
    assert invviz.invert(wrapped, torch.rand(1, 3, SIZE, SIZE)).images.shape == (1, 3, SIZE, SIZE)
    assert invviz.invert(model, torch.rand(1, 3, SIZE, SIZE), layer=layer, steps=2).images.shape == (1, 3, SIZE, SIZE)
    assert hooks_on(model) == 0 and flags_of(model) == flags


ZOO = [  # families found as a new user would: (timm name, a layer, the render size)
    ("levit_128s", "stages.2", 64),  # hierarchical token grids (49 and 16 tokens at 224 px), attention-bias caches
    ("tiny_vit_5m_224", "stages.2", 64),  # attention-bias caches
    ("dla34", "level4", 64),  # skips that must line up: the transformed sizes do not fit
    ("hrnet_w18_small", "stage3", 64),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, layer, size", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_renders_and_is_left_as_it_was(name, layer, size):
    """Random weights, tiny sizes: every family renders with both recipes, takes data passes (top_units, concepts)
    at a size it cannot take itself, and after them and recover_objective the model is as it was (flags, caches) and
    can still be deep-copied and wrapped."""
    import copy
    import warnings

    import timm

    from invviz.ifv import recover_objective

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    flags = flags_of(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for recipe in ("fast", "lucid"):
            r = invviz.visualize(model, layer, [0, 1], steps=2, size=size, recipe=recipe, progress=False)
            assert r.images.shape == (2, 3, size, size) and torch.isfinite(r.final).all()
        photo = invviz.data.load_photo("chelsea", size)
        odd = invviz.data.load_photo("chelsea", size + 5)  # a size DLA and HRNet cannot take: the probe fits it
        invviz.top_units(model, layer, odd, k=2)
        invviz.concepts(model, layer, torch.stack([odd, odd.flip(2)]), 2, method="pca", size=size + 5, top_n=1)
        recover_objective(model, layer, photo * 0.9 + 0.05, points=1)
    assert flags_of(model) == flags and hooks_on(model) == 0
    copy.deepcopy(model)
