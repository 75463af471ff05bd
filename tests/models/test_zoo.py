"""Layouts decided from the module, never guessed wrong, over a list of timm and torchvision architectures.

The oracle is the architecture's own description, not invviz's: timm's `feature_info` names each feature stage with
its channel count and stride, and for the torchvision models the channel counts come from their constructors. For
every stage, "channel k" of the probe's features must be a feature channel: the channel axis has the stated size,
the grid the stated stride, and (where the model takes other sizes) the channel axis stays put while the grid grows
with the input.
"""

import math

import pytest
import torch

from invviz.errors import LayoutError
from invviz.models import Preprocessing, Probe

PREP = Preprocessing()  # these random-init models carry ImageNet's defaults anyway; say so to silence the warning

# (timm name, input size, takes other sizes)
TIMM = [
    ("resnet18", 96, True),
    ("efficientnet_b0", 96, True),
    ("mobilenetv3_small_050", 96, True),
    ("convnext_atto", 96, True),
    ("regnetx_002", 96, True),
    ("densenet121", 96, True),
    ("inception_v3", 139, True),
    ("vgg11", 64, True),
    ("vit_tiny_patch16_224", 224, False),
    ("deit_tiny_patch16_224", 224, False),
    ("swin_tiny_patch4_window7_224", 224, False),
    ("maxvit_nano_rw_256", 256, False),
    ("coatnet_nano_rw_224", 224, False),
    ("tiny_vit_5m_224", 224, False),
]


def _grid_ok(grid: tuple[int, int], size: int, reduction: int) -> bool:
    want = size / reduction  # valid convolutions (Inception) lose a few pixels per stage
    return all(math.floor(0.8 * want) - 1 <= g <= math.ceil(want) + 1 for g in grid)


@pytest.mark.parametrize("name, size, flexible", TIMM, ids=[t[0] for t in TIMM])
def test_timm_feature_stages_are_read_channels_first(name, size, flexible):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    stages = [(i["module"], i["num_chs"], i["reduction"]) for i in model.feature_info]
    layers = [m for m, _, _ in stages]
    with torch.no_grad(), Probe(model, layers, preprocessing=PREP) as probe:
        feats = probe(torch.rand(1, 3, size, size))
    for module, chs, red in stages:
        f = feats[module]
        assert f.shape[1] == chs, f"{name} {module}: {tuple(f.shape)}, expected {chs} channels"
        assert _grid_ok(tuple(f.shape[2:]), size, red), f"{name} {module}: grid {tuple(f.shape[2:])} at stride {red}"
    if flexible:  # a larger input: the channel axis stays, the grid grows
        with torch.no_grad():
            bigger = Probe(model, layers, preprocessing=PREP)(torch.rand(1, 3, size + 64, size + 64))
        for module, chs, _ in stages:
            assert bigger[module].shape[1] == chs
            assert bigger[module].shape[2] >= feats[module].shape[2]


def test_layers_inside_blocks_of_convnext_and_swin():
    """Norms and linear layers inside blocks: ConvNeXt's LayerNorm2d is channels first, its Linear MLP channels
    last; Swin's stages and blocks are channels last, and tokens inside a block take the stage's grid."""
    import timm

    torch.manual_seed(0)
    convnext = timm.create_model("convnext_atto", pretrained=False, conv_mlp=False).eval()
    layers = ["stem.1", "stages.1.blocks.0.norm", "stages.1.blocks.0.mlp.fc1", "stages.1.blocks.0", "stages.1"]
    with torch.no_grad():
        f = Probe(convnext, layers, preprocessing=PREP)(torch.rand(1, 3, 224, 224))
    assert [tuple(f[n].shape[1:]) for n in layers] == [(40, 56, 56), (80, 28, 28), (320, 28, 28), (80, 28, 28),
                                                       (80, 28, 28)]
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    layers = ["patch_embed", "layers.0.blocks.0", "layers.1.blocks.0.mlp.fc1", "layers.2.downsample", "norm"]
    with torch.no_grad():
        f = Probe(swin, layers, preprocessing=PREP)(torch.rand(1, 3, 224, 224))
    assert [tuple(f[n].shape[1:]) for n in layers] == [(96, 56, 56), (96, 56, 56), (768, 28, 28), (384, 14, 14),
                                                       (768, 7, 7)]


def test_torchvision_models():
    import torchvision

    torch.manual_seed(0)
    cases = [
        (torchvision.models.resnet18(), 64, {"layer1": 64, "layer3": 256, "layer4.1.bn2": 512, "avgpool": 512}),
        (torchvision.models.mobilenet_v3_small(), 64, {"features.3": 24, "features.12": 576}),
        (torchvision.models.convnext_tiny(), 64, {"features.0.1": 96, "features.1.0.block.2": 96,
                                                  "features.1.0.block.3": 384, "features.3": 192}),
        (torchvision.models.swin_t(), 224, {"features.0": 96, "features.1.0.mlp.0": 384, "features.5": 384,
                                            "norm": 768}),
        (torchvision.models.vision_transformer.VisionTransformer(image_size=64, patch_size=16, num_layers=2,
                                                                  num_heads=2, hidden_dim=48, mlp_dim=96),
         64, {"conv_proj": 48, "encoder.layers.encoder_layer_1": 48, "encoder.layers.encoder_layer_0.mlp.0": 96}),
    ]
    for model, size, want in cases:
        model.eval()
        with torch.no_grad():
            f = Probe(model, list(want), preprocessing=PREP)(torch.rand(1, 3, size, size))
        got = {n: f[n].shape[1] for n in want}
        assert got == want, f"{type(model).__name__}: {got} != {want}"
    vit = cases[-1][0]
    with torch.no_grad():
        f = Probe(vit, ["encoder.layers.encoder_layer_1"], preprocessing=PREP)(torch.rand(1, 3, 64, 64))
    assert tuple(f["encoder.layers.encoder_layer_1"].shape) == (1, 48, 4, 4)  # the class token dropped


def test_an_undecidable_layout_is_a_typed_error_naming_the_override():
    """A custom module whose square 4D output has as many 'channels' as rows cannot be decided; never guess."""
    from torch import nn

    class Odd(nn.Module):  # fixed-size output (B, 8, 8, 8): no axis grows with the input, no module type decides
        def forward(self, x):
            return nn.functional.adaptive_avg_pool2d(x[:, :1], 8).expand(-1, 8, -1, -1).permute(0, 2, 3, 1) * 1.0

    model = nn.Sequential(nn.Conv2d(3, 8, 3), Odd()).eval()
    with pytest.raises(LayoutError, match="layouts="):
        Probe(model, ["1"], preprocessing=PREP)(torch.rand(1, 3, 32, 32))
    f = Probe(model, ["1"], preprocessing=PREP, layouts={"1": "NHWC"})(torch.rand(1, 3, 32, 32))
    assert tuple(f["1"].shape) == (1, 8, 8, 8)
