"""Leaving the user's model exactly as it was: train/eval flags and `requires_grad` flags."""

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
