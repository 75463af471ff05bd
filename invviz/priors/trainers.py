"""Training the priors the samplers need: a generator that inverts an encoder layer (DeePSiM-style: pixel loss,
feature loss in a comparator, adversarial loss with the authors' loss-ratio balancing), the code statistics that
bound the codes, and the code prior of PPGN-h (a denoising autoencoder on codes, or `R(h) = E(G(h))`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, ModelTypeError, ObjectiveError
from ..models.loading import model_device
from ..models.state import frozen_eval
from ..settings import TrainSchedule
from ..training import distributed as ddp
from ..training import fit
from ..training.discriminator import Discriminator
from ..training.loop import batch_images
from ..validate import check_learning_rate
from .generators import ImageGenerator

Features = Callable[[torch.Tensor], torch.Tensor]


def _images(batch: Any) -> torch.Tensor:
    """The images of a batch (see :func:`invviz.training.batch_images`), grey ones repeated to RGB."""
    x = batch_images(batch, check_range=False)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def train_generator(generator: ImageGenerator, encoder: Features, comparator: Features | None,
                    loader: Iterable[Any], *, schedule: TrainSchedule = TrainSchedule(), lr: float = 2e-4,
                    pixel_weight: float = 1.0, feature_weight: float = 0.01, adversarial_weight: float = 0.001,
                    discriminator: nn.Module | None = None, balance: float = 10.0,
                    checkpoint: str | os.PathLike[str] | None = None, resume: bool = True, progress: bool = True
                    ) -> list[dict[str, float]]:
    """Train `generator` so that `G(E(x)) ~ x` for images `x` in [0, 1] from `loader`.

    Loss: `pixel_weight |G(h) - x|^2 + feature_weight |C(G(h)) - C(x)|^2 + adversarial_weight * GAN` with `h =
    E(x)` (the encoder and comparator `C` are fixed callables). Loss-ratio balancing as in Dosovitskiy & Brox: the
    discriminator skips its update when its loss is below `1 / balance` of the generator's adversarial loss, and the
    generator drops its adversarial term when that is above `balance` times the discriminator's. The images are
    resized to the generator's size. Returns per-step losses; code bounds come from :func:`code_statistics`.
    """
    if not isinstance(generator, ImageGenerator):
        raise ModelTypeError(f"train_generator trains an invviz.priors.ImageGenerator; got {type(generator).__name__}")
    for name, fn in (("encoder", encoder), ("comparator", comparator)):
        if fn is not None and not callable(fn):
            raise ModelTypeError(f"the {name} must be a callable images -> features, e.g."
                                 f" invviz.models.Probe(model, 'global_pool').latent; got {type(fn).__name__}")
    lr = check_learning_rate(lr)
    schedule = TrainSchedule.checked(schedule, "schedule")
    device = model_device(generator)
    disc = (discriminator or Discriminator()).to(device) if adversarial_weight else None
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999)) if disc is not None else None
    size = generator.image_size

    def step(batch: Any, _: int) -> dict[str, torch.Tensor]:
        x = _images(batch).to(device)
        if tuple(x.shape[2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            h = encoder(x)
            target_feats = comparator(x) if comparator is not None and feature_weight else None
        fake = generator(h)
        pixel = F.mse_loss(fake, x)
        loss = pixel_weight * pixel
        logs: dict[str, torch.Tensor] = {}
        if target_feats is not None:
            feat = F.mse_loss(comparator(fake), target_feats)
            loss = loss + feature_weight * feat
            logs["feature"] = feat.detach()
        if disc is not None:
            adv_g = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(x.shape[0], device=device))
            d_real = F.binary_cross_entropy_with_logits(disc(x), torch.ones(x.shape[0], device=device))
            d_fake = F.binary_cross_entropy_with_logits(disc(fake.detach()), torch.zeros(x.shape[0], device=device))
            loss_d = d_real + d_fake
            # the balancing decisions use the mean over all ranks, so every rank decides the same way
            d_mean, g_mean = float(ddp.all_mean(loss_d.detach())), float(ddp.all_mean(adv_g.detach()))
            train_d = d_mean > g_mean / balance
            if g_mean < balance * d_mean:
                loss = loss + adversarial_weight * adv_g
            logs.update(adversarial=adv_g.detach(), discriminator=loss_d.detach())
        # the generator steps first: its adversarial term's graph runs through the discriminator as it was
        opt_g.zero_grad(set_to_none=True)
        loss.backward(inputs=list(generator.parameters()))
        opt_g.step()
        if disc is not None and train_d:
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward(inputs=list(disc.parameters()))
            opt_d.step()
        return {"loss": loss.detach(), "pixel": pixel.detach(), **logs}

    modules: dict[str, nn.Module] = {"generator": generator}
    optimizers = {"generator": opt_g}
    if disc is not None:
        modules["discriminator"], optimizers["discriminator"] = disc, opt_d
    modes = [(m, m.training) for m in generator.modules()]
    generator.train()
    try:
        return fit(step, loader, modules=modules, optimizers=optimizers, schedule=schedule, checkpoint=checkpoint,
                   resume=resume, progress=progress, desc="generator")
    finally:
        for m, mode in modes:  # every module's flag as the call found it
            m.training = mode


@torch.no_grad()
def code_statistics(encoder: Features, loader: Iterable[Any], *, sds: float = 3.0,
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-unit mean, standard deviation and clipping bound `max(0, mean + sds * sd)` of the encoder's codes."""
    codes = torch.cat([encoder(_images(b).to(device)).cpu() for b in loader])
    mean, sd = codes.mean(0), codes.std(0)
    return {"mean": mean, "sd": sd, "upper": (mean + sds * sd).clamp(min=1e-6), "codes": codes}


class CodeDAE(nn.Module):
    """A denoising autoencoder on codes: `R(h) ~ h` from `h + noise` (the `R_h` of PPGN-h)."""

    def __init__(self, code_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, code_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.net(h))  # codes are non-negative


def train_code_dae(codes: torch.Tensor, *, noise_sd: float = 0.1, hidden: int = 512,
                   schedule: TrainSchedule = TrainSchedule(epochs=50), batch_size: int = 64, lr: float = 1e-3,
                   checkpoint: str | os.PathLike[str] | None = None, progress: bool = True
                   ) -> tuple[CodeDAE, list[dict[str, float]]]:
    """Train a :class:`CodeDAE` on codes `(N, d)`; the noise is `noise_sd` times each unit's standard deviation."""
    try:
        codes = torch.as_tensor(codes, dtype=torch.float32)
    except (TypeError, ValueError):
        raise DataError(f"codes must be a tensor (N, d); got {type(codes).__name__}") from None
    if codes.dim() != 2 or codes.shape[0] < 2:
        raise ObjectiveError(f"codes must be (N >= 2, d); got {tuple(codes.shape)}")
    if not bool(torch.isfinite(codes).all()):
        raise DataError("codes must be finite (no NaN or infinity)")
    lr = check_learning_rate(lr)
    schedule = TrainSchedule.checked(schedule, "schedule")
    torch.manual_seed(schedule.seed)
    dae = CodeDAE(codes.shape[1], hidden)
    scale = codes.std(0, keepdim=True).clamp(min=1e-6) * noise_sd
    opt = torch.optim.Adam(dae.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(codes, batch_size=batch_size, shuffle=True, generator=torch.Generator())

    def step(h: torch.Tensor, _: int) -> dict[str, torch.Tensor]:
        loss = F.mse_loss(dae(h + scale * ddp.local_randn(h)), h)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    hist = fit(step, loader, modules={"dae": dae}, optimizers={"adam": opt}, schedule=schedule, checkpoint=checkpoint,
               progress=progress, desc="code DAE")
    return dae.eval(), hist


class JointPrior(nn.Module):
    """`R(h) = E(G(h))`: the released PPGN-h prior (encoder after generator)."""

    def __init__(self, encoder: Features, generator: ImageGenerator) -> None:
        super().__init__()
        self.encoder, self.generator = encoder, generator

    @torch.no_grad()
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        with frozen_eval(self.generator):
            return self.encoder(self.generator(h))
