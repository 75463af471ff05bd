"""Activations swapped for the length of a block, through the one capture (:class:`~invviz.models.Capture` with
:class:`~invviz.models.capture.FromInput` replacements, removed on exit).

Two uses, both by feature alignment, which differentiates through gradients:

- :func:`leaky_gradients`: ReLU and ReLU6 keep their forward values but pass `slope` times the gradient where they
  are off (or saturated). A decoder whose steps follow the network's gradient from a start image otherwise hears
  only from the units that are on at that image (few of EfficientNet-Lite0's `bn2` units at a flat grey image:
  `benchmarks/fa_lite0_diagnosis.py`).
- :func:`double_differentiable`: hardsigmoid and hardswish, which have no double backward in PyTorch, computed from
  ops that have one (the same values).

Both set in-place activations out of place meanwhile and restore the flags on exit.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .capture import Capture, FromInput


class LeakyGradClamp(torch.autograd.Function):
    """`x.clamp(lo, hi)` forward; backward passes the gradient where `lo < x < hi` and `slope` times it elsewhere.

    The backward is built of differentiable ops on the incoming gradient, so it has a (double) backward itself."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi, ctx.slope = lo, hi, slope
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        inside = (x > ctx.lo) & (x < ctx.hi)
        scale = torch.where(inside, torch.ones_like(x), torch.full_like(x, ctx.slope))
        return grad * scale, None, None, None


def _hardsigmoid(x: torch.Tensor) -> torch.Tensor:
    return (x + 3).clamp(0, 6) / 6


def _hardswish(x: torch.Tensor) -> torch.Tensor:
    return x * _hardsigmoid(x)


def relu_like(model: nn.Module) -> Iterator[tuple[str, float]]:
    """The name of every `nn.ReLU` (upper bound inf) and `nn.ReLU6` (6) of `model`, each module once."""
    for name, m in model.named_modules():
        if type(m) is nn.ReLU:
            yield name, float("inf")
        elif type(m) is nn.ReLU6:
            yield name, 6.0


@contextlib.contextmanager
def swapped(model: nn.Module, fns: dict[str, Callable[[torch.Tensor], torch.Tensor | None]]) -> Iterator[int]:
    """Each named layer's output replaced by `fn(its input)` while the block runs (an `fn` that returns None keeps the
    output): one :class:`Capture` with :class:`FromInput` replacements. Yields how many layers."""
    with Capture(model, [], replace={name: FromInput(fn) for name, fn in fns.items()}):
        yield len(fns)


@contextlib.contextmanager
def leaky_gradients(model: nn.Module, slope: float) -> Iterator[int]:
    """Every `nn.ReLU` / `nn.ReLU6` of `model` passes `slope` times the gradient where it is off (see
    :class:`LeakyGradClamp`); forward values unchanged. `slope=0` swaps nothing. Yields the number swapped."""
    if slope == 0:
        yield 0
        return
    fns = {name: (lambda x, hi=hi: LeakyGradClamp.apply(x, 0.0, hi, slope)) for name, hi in relu_like(model)}
    with swapped(model, fns) as n:
        yield n


@contextlib.contextmanager
def double_differentiable(model: nn.Module) -> Iterator[int]:
    """Every `nn.Hardsigmoid` / `nn.Hardswish` of `model` computed with ops that have a double backward (same
    values). Yields the number swapped."""
    fns = {nn.Hardsigmoid: _hardsigmoid, nn.Hardswish: _hardswish}
    with swapped(model, {name: fns[type(m)] for name, m in model.named_modules() if type(m) in fns}) as n:
        yield n


__all__ = ["LeakyGradClamp", "leaky_gradients", "double_differentiable", "relu_like", "swapped"]
