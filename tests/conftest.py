"""Shared fixtures: a small zoo of randomly initialised architectures plus the offline pretrained Lite0."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invviz  # noqa: F401  (first: makes torchvision importable with a CPU torch)

torch.set_num_threads(2)


def hooks_on(model: nn.Module) -> int:
    """Number of forward / forward-pre / backward hooks registered anywhere in `model`."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def flags_of(model: nn.Module) -> tuple:
    """Every module's training flag, every parameter's requires_grad, every in-place setting, and what the caches a
    forward fills hold (timm's attention-bias caches: a tensor left there keeps a graph and breaks deepcopy)."""
    from invviz.models.state import forward_caches

    return (
        tuple(m.training for m in model.modules()),
        tuple(p.requires_grad for p in model.parameters()),
        tuple(getattr(m, "inplace", None) for m in model.modules()),
        tuple((name, tuple(sorted(content))) for _, name, content in forward_caches(model)),
    )


@pytest.fixture(scope="session")
def lite0() -> nn.Module:
    return invviz.load_model("tf_efficientnet_lite0")


@pytest.fixture
def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def small_vit(**kwargs) -> nn.Module:
    import timm

    torch.manual_seed(0)
    args = dict(img_size=64, patch_size=16, embed_dim=48, depth=2, num_heads=2)
    args.update(kwargs)
    return timm.models.vision_transformer.VisionTransformer(**args).eval()


def small_swin() -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.models.swin_transformer.SwinTransformer(
        img_size=64, patch_size=4, window_size=4, embed_dim=24, depths=(1, 1), num_heads=(1, 2)).eval()


def small_convnext() -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model("convnext_atto", pretrained=False).eval()
