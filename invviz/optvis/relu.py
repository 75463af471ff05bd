"""Lucid's redirected ReLU: during the first steps of a render, let gradient through ReLUs that are off.

A unit whose every input is negative at the initial image gets no gradient through a ReLU, so plain rendering
never moves it. Lucid's `redirected_relu_grad` (lucid/misc/redirected_relu_grad.py) passes the incoming gradient
where the ReLU is off, except where it would push an already negative input lower, and uses that redirected
gradient for a batch element only when the ordinary ReLU gradient of that element is zero everywhere. ReLU6 is
redirected the same way at both of its bounds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def _pick(relu_grad: torch.Tensor, redirected: torch.Tensor) -> torch.Tensor:
    """Per batch element: the ordinary gradient where any of it is non-zero, else the redirected one."""
    passes = relu_grad.flatten(1).norm(dim=1) > 0
    return torch.where(passes.view(-1, *([1] * (relu_grad.dim() - 1))), relu_grad, redirected)


class RedirectedReLU(torch.autograd.Function):
    """`relu(x)` forward; Lucid's redirected gradient backward (the gradient is of a loss being minimized)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        zero = torch.zeros_like(grad)
        relu_grad = torch.where(x < 0, zero, grad)
        redirected = torch.where((x < 0) & (grad > 0), zero, grad)  # never push a negative input lower
        return _pick(relu_grad, redirected)


class RedirectedReLU6(torch.autograd.Function):
    """`relu6(x)` forward; Lucid's `redirected_relu6_grad` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(0, 6)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        zero = torch.zeros_like(grad)
        relu_grad = torch.where((x < 0) | (x > 6), zero, grad)
        stop = ((x < 0) & (grad > 0)) | ((x > 6) & (grad < 0))
        return _pick(relu_grad, torch.where(stop, zero, grad))


class _Redirect:
    """The switch :func:`redirect_relus` yields: `enabled` turns the redirection on and off between steps."""

    def __init__(self) -> None:
        self.enabled = False
        self.modules: list[nn.Module] = []


@contextlib.contextmanager
def redirect_relus(model: nn.Module, *, active: bool = True) -> Iterator[_Redirect]:
    """Hook every `nn.ReLU` / `nn.ReLU6` module of `model` so that, while `.enabled`, its output carries the
    redirected gradient; in-place ReLUs compute out of place meanwhile. Hooks and in-place flags are restored on
    exit. With `active=False` nothing is hooked."""
    switch = _Redirect()
    handles = []
    inplace = []
    try:
        if active:
            for m in model.modules():
                if type(m) in (nn.ReLU, nn.ReLU6):
                    fn = RedirectedReLU if type(m) is nn.ReLU else RedirectedReLU6
                    inplace.append((m, m.inplace))
                    m.inplace = False

                    def hook(module, args, output, fn=fn):
                        if switch.enabled and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
                            return fn.apply(args[0])
                        return None

                    handles.append(m.register_forward_hook(hook, prepend=True))
                    switch.modules.append(m)
        yield switch
    finally:
        for h in handles:
            h.remove()
        for m, flag in inplace:
            m.inplace = flag


__all__ = ["RedirectedReLU", "RedirectedReLU6", "redirect_relus"]
