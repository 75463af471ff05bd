"""Networks of Farias & Maziero 2023's experiments: the toy MLP, the MNIST-style encoder (FA / VFA), the decoder of the AE/VAE
baselines, and the layer-wise (local) FA network with asinh activations."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..errors import ObjectiveError
from .core import align, check_schedule


class ToyNet(nn.Module):
    """Farias & Maziero 2023, sec. 3.2: `x (B, 1) -> (f, l)`; `f` approximates `sin(3 pi x)`, `l` is the extra latent neuron."""

    def __init__(self, hidden: int = 1024) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 2): [f, l]


def toy_recover(net: ToyNet, x: torch.Tensor, *, steps: int = 1, tau: float = 1.0, alpha: float = 0.01,
                create_graph: bool = False) -> torch.Tensor:
    """Recover `x` from `(f_x, l_x)`: from `r = 0`, `r <- r - tau dL/dr`, `L = |l_x - l_r|^2 + alpha |f_x - f_r|^2`."""
    out = net(x)
    weights = torch.tensor([alpha, 1.0], device=x.device)

    def enc(r: torch.Tensor) -> torch.Tensor:
        return net(r) * weights.sqrt()

    # align() minimizes 1/2 |z - E(r)|^2; scale by sqrt(weights) and double tau to get the paper's unhalved L
    return align(enc, out * weights.sqrt(), tuple(x.shape), steps=steps, tau=2 * tau, create_graph=create_graph)


def with_class_logits(z: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """The latent FA aligns: `z`, followed by the class logits when the encoder has a class head."""
    return z if logits is None else torch.cat([z, logits], 1)


class FashionEncoder(nn.Module):
    """The authors' MNIST encoder: 4 convolutions, FC 4096, latent 128 (28 x 28 grey input).

    `variational=True` adds the VFA heads (`mu`, `log sigma^2`); `classes` adds a linear class head on the 4096
    features, parallel to them (Farias & Maziero 2023 sec. 3.4): its logits are appended to the latent that FA aligns, so a
    sample can be conditioned on a class by putting a (scaled) one-hot vector there.
    """

    def __init__(self, latent: int = 128, variational: bool = False, classes: int = 0, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(4 * w * 7 * 7, 4096), nn.LeakyReLU(0.2))
        self.mu = nn.Linear(4096, latent)
        self.logvar = nn.Linear(4096, latent) if variational else None
        self.classifier = nn.Linear(4096, classes) if classes else None
        self.latent = latent
        self.classes = classes

    @property
    def variational(self) -> bool:
        return self.logvar is not None

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`mu`, `log sigma^2` (None without VFA heads), class logits (None without a class head)."""
        h = self.features(x)
        logvar = None if self.logvar is None else self.logvar(h).clamp(-10, 10)
        return self.mu(h), logvar, None if self.classifier is None else self.classifier(h)

    def stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mu, logvar, _ = self.heads(x)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The latent FA aligns: `mu` (FA), or `mu + sigma` (VFA, the authors' random-branch cost), then the class
        logits when there is a class head."""
        mu, logvar, logits = self.heads(x)
        return with_class_logits(mu if logvar is None else mu + torch.exp(0.5 * logvar), logits)


class FashionDecoder(nn.Module):
    """Mirror of :class:`FashionEncoder` for the autoencoder / VAE baselines: latent -> (1, 28, 28) in (0, 1)."""

    def __init__(self, latent: int = 128, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Linear(latent, 4096), nn.LeakyReLU(0.2), nn.Linear(4096, 4 * w * 7 * 7), nn.LeakyReLU(0.2),
            nn.Unflatten(1, (4 * w, 7, 7)),
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 1, 3, 1, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class LocalFA(nn.Module):
    """Layer-wise FA (Farias & Maziero 2023 sec. 3.5): `x_{l+1} = asinh(W_l x_l + b_l)` on flattened inputs.

    Each linear layer is trained with its local loss only (Algorithm 2), so no graph spans layers; decoding
    (Algorithm 3) walks back from the latent applying `sinh` (the exact inverse of `asinh`) and, per linear layer,
    one alignment step from zero, `tau W^T (y - b)`.
    """

    def __init__(self, sizes: tuple[int, ...] = (784, 512, 256, 128)) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ObjectiveError(f"LocalFA needs at least an input and a latent size; got {sizes}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for lin in self.layers:
            h = torch.asinh(lin(h))
        return h

    def iter_local_losses(self, x: torch.Tensor, tau: float = 1.0) -> Iterator[torch.Tensor]:
        """Per-layer losses `1/2 |x_l - r_hat_l|^2` (batch mean), one layer at a time; each depends on its own layer's
        weights only, and no graph spans layers (a layer's input is detached)."""
        check_schedule(1, tau)
        h = x.flatten(1)
        for lin in self.layers:
            h = h.detach()
            y = lin(h)  # pre-activation target of this layer (asinh is inverted exactly)
            r0 = torch.zeros_like(h, requires_grad=True)
            fit = 0.5 * ((lin(r0) - y.detach()) ** 2).sum()
            (g,) = torch.autograd.grad(fit, r0, create_graph=True)
            r_hat = r0 - tau * g
            yield 0.5 * ((h - r_hat) ** 2).sum(1).mean()
            h = torch.asinh(y.detach())

    def local_losses(self, x: torch.Tensor, tau: float = 1.0) -> list[torch.Tensor]:
        """All per-layer losses of :meth:`iter_local_losses` at once."""
        return list(self.iter_local_losses(x, tau))

    def train_step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer, tau: float = 1.0) -> list[float]:
        """Algorithm 2: each layer's loss is back-propagated as soon as it is computed, so only one layer's graph is
        alive at a time (the memory advantage of local FA); then one optimizer step. Returns the per-layer losses."""
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for loss in self.iter_local_losses(x, tau):
            loss.backward()
            losses.append(float(loss.detach()))
        optimizer.step()
        return losses

    @torch.no_grad()
    def decode(self, z: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """Algorithm 3: from the latent back to the (flattened) input."""
        h = z
        for lin in reversed(self.layers):
            y = torch.sinh(h)
            h = tau * (y - lin.bias) @ lin.weight  # one step from zero: tau W^T (y - b)
        return h
