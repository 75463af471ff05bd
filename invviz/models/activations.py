"""Activations swapped for the length of a block, through forward hooks that are removed on exit.

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


def relu_like(model: nn.Module) -> Iterator[tuple[nn.Module, float]]:
    """Every `nn.ReLU` (upper bound inf) and `nn.ReLU6` (6) of `model`."""
    for m in model.modules():
        if type(m) is nn.ReLU:
            yield m, float("inf")
        elif type(m) is nn.ReLU6:
            yield m, 6.0


@contextlib.contextmanager
def swap_outputs(modules: list[tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]]) -> Iterator[int]:
    """Each module's output replaced by `fn(its input)` while the block runs (an `fn` that returns None keeps the
    output), through forward hooks run first; in-place modules compute out of place meanwhile. Yields how many."""
    handles, inplace = [], []
    try:
        for m, fn in modules:
            if hasattr(m, "inplace"):
                inplace.append((m, m.inplace))
                m.inplace = False

            def hook(module, args, output, fn=fn):
                return fn(args[0]) if isinstance(args[0], torch.Tensor) else None

            handles.append(m.register_forward_hook(hook, prepend=True))
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
        for m, flag in inplace:
            m.inplace = flag


@contextlib.contextmanager
def leaky_gradients(model: nn.Module, slope: float) -> Iterator[int]:
    """Every `nn.ReLU` / `nn.ReLU6` of `model` passes `slope` times the gradient where it is off (see
    :class:`LeakyGradClamp`); forward values unchanged. `slope=0` swaps nothing. Yields the number swapped."""
    if slope == 0:
        yield 0
        return
    mods = [(m, lambda x, hi=hi: LeakyGradClamp.apply(x, 0.0, hi, slope)) for m, hi in relu_like(model)]
    with swap_outputs(mods) as n:
        yield n


@contextlib.contextmanager
def double_differentiable(model: nn.Module) -> Iterator[int]:
    """Every `nn.Hardsigmoid` / `nn.Hardswish` of `model` computed with ops that have a double backward (same
    values). Yields the number swapped."""
    fns = {nn.Hardsigmoid: _hardsigmoid, nn.Hardswish: _hardswish}
    mods = [(m, fns[type(m)]) for m in model.modules() if type(m) in fns]
    with swap_outputs(mods) as n:
        yield n


__all__ = ["LeakyGradClamp", "leaky_gradients", "double_differentiable", "relu_like", "swap_outputs"]
