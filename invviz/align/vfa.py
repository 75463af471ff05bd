"""Variational feature alignment (Farias & Maziero 2023 sec. 3.3) and VFA-GAN (sec. 3.4).

VFA: the encoder has `mu` and `log sigma^2` heads; `z_x = mu + eps * sigma` is decoded by FA (the alignment cost uses
the encoder's `mu(r) + sigma(r)`, as the authors' code), and the loss is `|x - r_hat|^2 + beta KL` with `beta ~ U(0, 1)`
drawn per example. Samples: `z ~ N(0, I)` decoded by the same T alignment steps. An optional class head (parallel to
`mu`, `log sigma^2`) appends class logits to the latent; a scaled one-hot vector there conditions a sample.

VFA-GAN adds a refiner `G(r_hat)` and a discriminator `D`, least-squares GAN (targets +1 real, -1 fake):

    L_E = |x - r_hat|^2 + beta KL                                                      (Eq. 6)
    L_G = |1 - D(G(r_hat))|^2 + lambda (|mu(x) - mu(G(r_hat))|^2 + |s2(x) - s2(G(r_hat))|^2)   (Eq. 7)
    L_D = |1 - D(x)|^2 + |-1 - D(G(r_hat))|^2                                          (Eq. 8)

with `s2 = sigma^2`; each loss updates only its own network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ObjectiveError
from ..models.loading import model_device
from ..training.discriminator import Discriminator
from .core import clamp_input, clamp_weights_, decode, fa_loss
from .models import with_class_logits


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """`KL(N(mu, sigma^2) || N(0, I))` per example, `(B,)`."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def _variational(encoder: nn.Module) -> None:
    if getattr(encoder, "logvar", None) is None or not hasattr(encoder, "heads"):
        raise ObjectiveError("VFA needs an encoder with variational heads (`heads(x) -> mu, logvar, logits`), e.g."
                             " FashionEncoder(variational=True)")


def vfa_loss(encoder: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None, *, steps: int = 1,
             tau: float = 1.0, init: str = "zeros", beta: torch.Tensor | float | None = None,
             class_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The VFA loss of a batch `x` in [0, 1]: `mean_b(|x_b - r_hat_b|^2 + beta_b KL_b)` (+ cross-entropy of the class
    head when `labels` are given). `beta=None` draws `beta ~ U(0, 1)` per example (the paper's random schedule).

    Returns `loss`, `recon`, `kl` (batch means), and `r_hat`, `mu`, `logvar`, `logits` for the caller.
    """
    _variational(encoder)
    x = clamp_input(x)
    mu, logvar, logits = encoder.heads(x)
    z = with_class_logits(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), logits)
    recon, _, r_hat = fa_loss(encoder, x, steps=steps, tau=tau, init=init, z=z)
    kl = kl_divergence(mu, logvar)
    if beta is None:
        beta = torch.rand(x.shape[0], device=x.device)
    loss = recon + (torch.as_tensor(beta, device=x.device) * kl).mean()
    out = {"recon": recon, "kl": kl.mean()}
    if labels is not None:
        if logits is None:
            raise ObjectiveError("labels were given but the encoder has no class head; build it with classes=N")
        out["class"] = F.cross_entropy(logits, labels)
        loss = loss + class_weight * out["class"]
    return {"loss": loss, **out, "r_hat": r_hat, "mu": mu, "logvar": logvar, "logits": logits}


def prior_latent(encoder: nn.Module, n: int, *, classes: Sequence[int] | torch.Tensor | None = None,
                 class_scale: float = 1.0, rng: torch.Generator | None = None) -> torch.Tensor:
    """Latents to sample from: `z ~ N(0, I)`, plus `class_scale` times the one-hot of `classes` for an encoder with a
    class head (a larger scale emphasises the class; random classes when `classes` is None)."""
    z = torch.randn(n, encoder.latent, generator=rng)
    k = getattr(encoder, "classes", 0)
    if not k:
        if classes is not None:
            raise ObjectiveError("classes were given but the encoder has no class head; build it with classes=N")
        return z
    c = torch.randint(k, (n,), generator=rng) if classes is None else torch.as_tensor(classes).reshape(-1)
    if c.numel() != n or int(c.min()) < 0 or int(c.max()) >= k:
        raise ObjectiveError(f"need {n} class indices in [0, {k}); got {c.tolist()[:8]}")
    return torch.cat([z, class_scale * F.one_hot(c, k).float()], 1)


def mean_latent(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The latent of `x` without sampling noise: `mu` (and the class logits) — what reconstruction decodes."""
    _variational(encoder)
    mu, _, logits = encoder.heads(clamp_input(x))
    return with_class_logits(mu, logits)


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    """`n` latents evenly spaced on the segment from `z0 (d,)` to `z1 (d,)`, ends included, `(n, d)`."""
    if n < 2:
        raise ObjectiveError(f"interpolation needs n >= 2 points; got {n}")
    w = torch.linspace(0, 1, n, dtype=z0.dtype, device=z0.device)[:, None]
    return (1 - w) * z0.reshape(1, -1) + w * z1.reshape(1, -1)


class Refiner(nn.Module):
    """The VFA-GAN generator `G(r_hat)`: image in (0, 1) -> refined image in (0, 1), a residual in logit space.

    The last convolution starts at zero, so an untrained refiner is the identity: VFA-GAN starts where VFA is.
    """

    def __init__(self, channels: int = 1, width: int = 32, blocks: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        for _ in range(blocks):
            layers += [nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        last = nn.Conv2d(width, channels, 3, 1, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.logit(x.clamp(1e-4, 1 - 1e-4)) + self.net(x * 2 - 1))


class VFAGAN(nn.Module):
    """A VFA encoder with a refiner and a discriminator (Farias & Maziero 2023 sec. 3.4); `lam` weights the perceptual term."""

    def __init__(self, encoder: nn.Module, refiner: nn.Module | None = None, discriminator: nn.Module | None = None,
                 *, lam: float = 0.01, steps: int = 1, tau: float = 1.0) -> None:
        super().__init__()
        _variational(encoder)
        if lam < 0:
            raise ObjectiveError(f"the perceptual weight lambda must be >= 0; got {lam}")
        channels = encoder.features[0].in_channels if isinstance(encoder.features, nn.Sequential) else 1
        self.encoder = encoder
        self.refiner = refiner or Refiner(channels)
        self.discriminator = discriminator or Discriminator(channels=channels)
        self.lam, self.steps, self.tau = lam, steps, tau

    def losses(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Eq. 6-8 on a batch: `encoder`, `generator`, `discriminator` losses (each to update its own network)."""
        x = clamp_input(x)
        vfa = vfa_loss(self.encoder, x, labels, steps=self.steps, tau=self.tau)
        fake = self.refiner(vfa["r_hat"].detach())
        adversarial = ((1 - self.discriminator(fake)) ** 2).mean()
        mu_f, logvar_f = self.encoder.stats(fake)
        mu_x, var_x = vfa["mu"].detach(), vfa["logvar"].detach().exp()
        perceptual = ((mu_x - mu_f) ** 2).sum(1).mean() + ((var_x - logvar_f.exp()) ** 2).sum(1).mean()
        disc = ((1 - self.discriminator(x)) ** 2).mean() + ((-1 - self.discriminator(fake.detach())) ** 2).mean()
        return {"encoder": vfa["loss"], "generator": adversarial + self.lam * perceptual, "discriminator": disc,
                "recon": vfa["recon"].detach(), "kl": vfa["kl"].detach(), "adversarial": adversarial.detach(),
                "perceptual": perceptual.detach()}

    def train_step(self, x: torch.Tensor, optimizers: Mapping[str, torch.optim.Optimizer],
                   labels: torch.Tensor | None = None, *, clamp: float | None = 2 ** 0.5) -> dict[str, torch.Tensor]:
        """One update of the three networks; `optimizers` has keys `encoder`, `refiner`, `discriminator`. Each loss
        accumulates gradients only into its own network; all three step after the backward passes."""
        out = self.losses(x, labels)
        nets = {"encoder": (self.encoder, "encoder"), "refiner": (self.refiner, "generator"),
                "discriminator": (self.discriminator, "discriminator")}
        for name, (net, loss) in nets.items():
            optimizers[name].zero_grad(set_to_none=True)
            out[loss].backward(inputs=[p for p in net.parameters() if p.requires_grad])
        for name in nets:
            optimizers[name].step()
        if clamp is not None:
            clamp_weights_(self.encoder, clamp)
        return {k: v.detach() for k, v in out.items()}

    def reconstruct(self, x: torch.Tensor, *, refine: bool = True) -> torch.Tensor:
        """FA-decode the mean latent of `x`, then refine."""
        r_hat = decode(self.encoder, mean_latent(self.encoder, x).detach(), tuple(x.shape), steps=self.steps,
                       tau=self.tau)
        return self.refiner(r_hat).detach() if refine else r_hat

    def sample(self, n: int, shape: tuple[int, ...], *, classes: Sequence[int] | None = None,
               class_scale: float = 1.0, rng: torch.Generator | None = None, refine: bool = True
               ) -> torch.Tensor:
        """`n` samples of image shape `(C, H, W)`: `z ~ N(0, I)` (+ class one-hot), FA decoding, refiner."""
        return vfa_sample(self.encoder, n, shape, classes=classes, class_scale=class_scale, rng=rng,
                          steps=self.steps, tau=self.tau, refiner=self.refiner if refine else None)


def vfa_sample(encoder: nn.Module, n: int, shape: tuple[int, ...], *, classes: Sequence[int] | None = None,
               class_scale: float = 1.0, rng: torch.Generator | None = None, steps: int = 1,
               tau: float = 1.0, refiner: nn.Module | None = None) -> torch.Tensor:
    """Samples of a VFA encoder: `z ~ N(0, I)` decoded by T alignment steps (then `refiner`, if given)."""
    z = prior_latent(encoder, n, classes=classes, class_scale=class_scale, rng=rng)
    images = decode(encoder, z.to(model_device(encoder)), (n, *shape), steps=steps, tau=tau)
    if refiner is not None:
        with torch.no_grad():
            images = refiner(images)
    return images
