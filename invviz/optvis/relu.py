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

from ..models.activations import relu_like, swapped


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


@contextlib.contextmanager
def redirect_relus(model: nn.Module, *, active: bool = True) -> Iterator[_Redirect]:
    """Hook every `nn.ReLU` / `nn.ReLU6` module of `model` so that, while `.enabled`, its output carries the
    redirected gradient; in-place ReLUs compute out of place meanwhile. Hooks and in-place flags are restored on
    exit (:func:`invviz.models.activations.swapped`, one :class:`~invviz.models.Capture`). With `active=False`
    nothing is hooked."""
    switch = _Redirect()
    fns = {}
    if active:
        for name, hi in relu_like(model):
            fn = RedirectedReLU if hi == float("inf") else RedirectedReLU6

            def redirect(x: torch.Tensor, fn=fn) -> torch.Tensor | None:
                return fn.apply(x) if switch.enabled and x.requires_grad else None

            fns[name] = redirect
    with swapped(model, fns):
        yield switch


__all__ = ["RedirectedReLU", "RedirectedReLU6", "redirect_relus"]
