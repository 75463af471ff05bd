"""Feature alignment (Farias & Maziero 2023, Algorithm 1): decode a latent with the encoder itself.

From `r_0`, T steps `r <- r - tau * dL/dr` with `L = 1/2 |z - E(r)|^2` (summed per example), then `r_hat =
sigmoid(r_T)`. Training keeps the graph of those steps (`create_graph=True`) so the encoder update differentiates
through them, and minimizes `|x - r_hat|^2` (plus the task loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ObjectiveError

Encoder = Callable[[torch.Tensor], torch.Tensor]
INITS = ("zeros", "uniform", "gaussian")
INPUT_CLAMP = 0.01


def check_schedule(steps: int, tau: float | torch.Tensor) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ObjectiveError(f"feature alignment needs steps T >= 1; got {steps!r}")
    if torch.is_tensor(tau):
        if tau.dim() > 1 or (tau.dim() == 1 and len(tau) == 0) or not bool((tau > 0).all()):
            raise ObjectiveError(f"the alignment step sizes must be a number or a 1-D tensor of numbers > 0; got {tau}")
    elif not tau > 0:
        raise ObjectiveError(f"the alignment step size tau must be > 0; got {tau!r}")


def step_size(tau: float | torch.Tensor, t: int) -> float | torch.Tensor:
    """The step size of step `t`: one number for every step, or `tau[t]` from a per-step tensor (its last entry for
    steps past its end)."""
    if torch.is_tensor(tau) and tau.dim() == 1:
        return tau[min(t, len(tau) - 1)]
    return tau


def initial_input(shape: tuple[int, ...], init: str = "zeros", *, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, rng: torch.Generator | None = None) -> torch.Tensor:
    """`r_0`: zeros (the authors' code), uniform in [-1, 1], or standard Gaussian (the paper)."""
    if init == "zeros":
        return torch.zeros(shape, device=device, dtype=dtype)
    if init == "uniform":
        return (torch.rand(shape, generator=rng, dtype=dtype) * 2 - 1).to(device)
    if init == "gaussian":
        return torch.randn(shape, generator=rng, dtype=dtype).to(device)
    raise ObjectiveError(f"unknown r_0 init {init!r}; use one of {INITS}")


def align(encoder: Encoder, z: torch.Tensor, shape: tuple[int, ...], *, steps: int = 1,
          tau: float | torch.Tensor = 1.0, init: str = "zeros", create_graph: bool = False,
          rng: torch.Generator | None = None, r0: torch.Tensor | None = None,
          link: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The alignment steps, the one loop of invviz's feature alignment: `r_T` whose latent approaches `z (B, ...)`.

    From `r_0` (`init`, or `r0` given), T steps `r <- r - tau_t dL/dr` with `L = 1/2 |z - E(link(r))|^2`; `tau` is one
    number or a per-step tensor `(T,)` (differentiable: a learned schedule). `link` maps `r` to the encoder's input
    (the wrapper decodes in logit space: `torch.sigmoid`; the paper's models: none). `shape` is the input shape
    `(B, C, H, W)`; `create_graph=True` keeps the graph for training.
    """
    check_schedule(steps, tau)
    r = initial_input(shape, init, device=z.device, dtype=z.dtype, rng=rng) if r0 is None else r0
    if not create_graph:
        r = r.detach()
    for t in range(steps):
        if not r.requires_grad:
            r = r.requires_grad_(True)
        with torch.enable_grad():
            zr = encoder(r if link is None else link(r))
            if zr.shape != z.shape:
                raise ObjectiveError(f"the latent of the input has shape {tuple(zr.shape)} but the target latent has"
                                     f" {tuple(z.shape)}; pass a latent of the encoder's size")
            loss = 0.5 * ((z - zr) ** 2).sum()
            (g,) = torch.autograd.grad(loss, r, create_graph=create_graph)
        r = r - step_size(tau, t) * g
        if not create_graph:
            r = r.detach()
    return r


def decode(encoder: Encoder, z: torch.Tensor, shape: tuple[int, ...], **kwargs) -> torch.Tensor:
    """FA decoding: `sigmoid(r_T)`, images in (0, 1), no graph kept."""
    return torch.sigmoid(align(encoder, z.detach(), shape, create_graph=False, **kwargs)).detach()


def fa_loss(encoder: Encoder, x: torch.Tensor, *, steps: int = 1, tau: float = 1.0, init: str = "zeros",
            rng: torch.Generator | None = None, z: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The FA reconstruction loss `mean_b |x_b - r_hat_b|^2` (summed over pixels), with the latent `z = E(x)` and
    `r_hat`; differentiable in the encoder's weights through the alignment steps."""
    x = clamp_input(x)
    z = encoder(x) if z is None else z
    r = align(encoder, z, tuple(x.shape), steps=steps, tau=tau, init=init, create_graph=True, rng=rng)
    r_hat = torch.sigmoid(r)
    loss = ((x - r_hat) ** 2).flatten(1).sum(1).mean()
    return loss, z, r_hat


def clamp_input(x: torch.Tensor) -> torch.Tensor:
    """The authors' input clamp to [0.01, 0.99]: images whose logits are finite."""
    return x.clamp(INPUT_CLAMP, 1 - INPUT_CLAMP)


def orthogonal_init_(module: nn.Module) -> nn.Module:
    """Orthogonal weights and zero biases for every conv and linear layer (Farias & Maziero 2023, Eq. 9's companion)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


@torch.no_grad()
def clamp_weights_(module: nn.Module, bound: float = math.sqrt(2)) -> None:
    """Clamp every conv/linear weight to `[-bound, bound]` (Farias & Maziero 2023, Eq. 9), after each optimizer step."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.clamp_(-bound, bound)
