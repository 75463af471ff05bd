"""Feature alignment (Farias & Maziero 2023): networks whose latents are decoded by the network itself.

- :func:`align`, :func:`decode`, :func:`fa_loss`: Algorithm 1 (T steps `r <- r - tau dL/dr`, graph kept in training).
- :class:`FeatureAligned`, :func:`train_aligned`: the fine-tuning wrapper for any pretrained model, which keeps the
  model's predictions (exactly, through a projection, where the head is affine).
- :class:`FashionEncoder` (FA and VFA heads), :class:`FashionDecoder` (AE/VAE baselines), :class:`ToyNet`,
  :class:`LocalFA` (layer-wise FA with asinh).
- :func:`vfa_loss`, :func:`vfa_sample`, :class:`VFAGAN` (refiner + least-squares discriminator): VFA and VFA-GAN.

`invviz.invert` decodes a :class:`FeatureAligned` model with its own alignment steps.
"""

from .core import align, clamp_weights_, decode, fa_loss, initial_input, orthogonal_init_
from .models import FashionDecoder, FashionEncoder, LocalFA, ToyNet, toy_recover
from .vfa import (
    VFAGAN,
    Refiner,
    interpolate_latents,
    kl_divergence,
    mean_latent,
    prior_latent,
    vfa_loss,
    vfa_sample,
)
from .wrapper import FeatureAligned, default_latent_layer, train_aligned

__all__ = ["align", "clamp_weights_", "decode", "fa_loss", "initial_input", "orthogonal_init_", "FashionDecoder",
           "FashionEncoder", "LocalFA", "ToyNet", "toy_recover", "FeatureAligned", "default_latent_layer",
           "train_aligned", "VFAGAN", "Refiner", "interpolate_latents", "kl_divergence", "mean_latent",
           "prior_latent", "vfa_loss", "vfa_sample"]
