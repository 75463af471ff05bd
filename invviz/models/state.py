"""Leaving the user's model exactly as it was: train/eval flags, `requires_grad` flags, and the caches a forward fills
(timm's attention-bias caches of LeViT, TinyViT, EfficientFormer: tensors that would otherwise keep a graph, or a
functorch wrapper, and make the model impossible to deepcopy)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def frozen_eval(model: nn.Module, *, freeze: bool = True, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Put `model` in eval mode with frozen weights for the block; restore every module's flags after.

    Rendering and inversion never need weight gradients, so freezing them makes backward compute input
    gradients only. Flags are restored per module and per parameter, even when the block raises.
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    caches = forward_caches(model)
    try:
        if eval_mode:
            model.eval()
        if freeze:
            for p, _ in grads:
                p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, name, content in caches:
            setattr(m, name, dict(content))


def forward_caches(model: nn.Module) -> list[tuple[nn.Module, str, dict]]:
    """Every dict attribute named `*_cache` of the model's modules, with a copy of its content (what a forward may
    fill, e.g. timm's `attention_bias_cache`)."""
    return [(m, name, dict(value)) for m in model.modules() for name, value in vars(m).items()
            if name.endswith("_cache") and isinstance(value, dict)]
