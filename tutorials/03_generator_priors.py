# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Generator priors: DGN-AM and PPGN-h
#
# Instead of optimizing pixels, search the code space of an image generator (DGN-AM), and add a learned prior on the
# code with a Langevin-style sampler (PPGN-h) (Nguyen et al. 2016, 2017). invviz trains its own generator for any encoder, so the
# samplers work with any timm/torchvision classifier. Here: a compact generator learns to invert the pooled features of
# the pretrained EfficientNet-Lite0 on crops of the photos that ship with scikit-image/scikit-learn/matplotlib; then
# both samplers visualize a class and a hidden unit. (`INVVIZ_SMALL=1`: a few training steps only.)

# %%
import os
import functools
import invviz
import torch
from invviz.data import photo_crops
from invviz.models import Probe
from invviz.optvis import channel, class_logit
from invviz.priors import (CompactGenerator, DeePSiMFc6, JointPrior, PPGNSettings, code_statistics,
                           dgn_am, load_generator_state, ppgn_h, train_code_dae, train_generator)
from invviz.training import TrainSchedule
from _common import DEVICE, SMALL, pick

GEN_STEPS, STEPS, SIZE = pick((3, 4, 48), (3000, 200, 224))
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)

# %% [markdown]
# ## Train a generator that inverts the pooled features, and the code prior

# %%
crops = photo_crops(pick(64, 4096), 64, seed=0).to(DEVICE)
encoder = Probe(model, "global_pool").latent       # images -> pooled features (B, 1280): the code
comparator = Probe(model, "blocks.2").latent       # images -> flattened blocks.2 features: the comparator
gen = CompactGenerator(code_dim=1280, size=64).to(DEVICE)
loader = torch.utils.data.DataLoader(crops, batch_size=32, shuffle=True, generator=torch.Generator())
hist = train_generator(gen, encoder, comparator, loader, schedule=TrainSchedule(max_steps=GEN_STEPS), progress=False)
print("pixel loss", hist[0]["pixel"], "->", hist[-1]["pixel"])
stats = code_statistics(encoder, torch.utils.data.DataLoader(crops, batch_size=128), device=DEVICE)
gen.set_code_bounds(stats["upper"])
dae, _ = train_code_dae(stats["codes"], schedule=TrainSchedule(epochs=pick(3, 50)), progress=False)
with torch.no_grad():
    recon = gen(encoder(crops[:6]))
invviz.plotting.show_images(torch.cat([crops[:6].cpu(), recon.cpu()]), ["photo"] * 6 + ["G(E(x))"] * 6);

# %% [markdown]
# ## DGN-AM: a class and a hidden unit
# Normalized gradient steps on the code, learning rate falling linearly, codes clipped to [0, ub], decay 0.99; the
# trajectory of the activation (and the class probability) comes back per step and chain.

# %%
cls = dgn_am(model, gen, class_logit(309), steps=STEPS, chains=2, size=SIZE, monitor_class=309)
unit = dgn_am(model, gen, channel("blocks.5", 11), steps=STEPS, chains=2, size=SIZE)
print("class logit", cls.activation[[0, -1]].tolist(), "p", cls.probability[-1].tolist())
print("unit", unit.activation[[0, -1]].tolist())
invviz.plotting.show_images(torch.cat([cls.images, unit.images]), ["bee"] * 2 + ["blocks.5:11"] * 2);

# %% [markdown]
# ## PPGN-h
# The authors' step: `d = eps1 (R(h) - h) + eps2 g + N(0, eps3^2)`, `h <- h + eta d / mean|d|`, with the code DAE as `R`
# (or `R(h) = E(G(h))`), the authors' `(1 - p) d logit` gradient or the exact log-softmax one. As in their sampler, the
# images along the chain whose class probability passes the threshold are the samples (`save_every` steps apart).

# %%
pp = ppgn_h(model, gen, dae.to(DEVICE), 309, steps=STEPS, chains=3, size=SIZE, upper=gen.upper_bounds,
            save_every=max(1, STEPS // 10), threshold=0.0 if SMALL else 0.9)
ex = ppgn_h(model, gen, JointPrior(encoder, gen), 309, settings=PPGNSettings(gradient="exact"), steps=STEPS, chains=3,
            size=SIZE,
            upper=gen.upper_bounds)
print("p at the end", pp.probability[-1].tolist(), "last image above the threshold", pp.kept.tolist())
print(len(pp.samples), "samples kept along the chains, at steps", pp.sample_steps.tolist())
print("exact gradient, E(G(h)) prior:", ex.probability[-1].tolist())
invviz.plotting.show_images(torch.cat([pp.images, ex.images]), ["PPGN-h DAE"] * 3 + ["PPGN-h E(G(h))"] * 3)
if len(pp.samples):
    invviz.plotting.show_images(pp.samples[:8], [f"step {s}" for s in pp.sample_steps[:8].tolist()]);

# %% [markdown]
# ## The original DeePSiM fc6 generator
# With converted fc6 weights on disk (public PyTorch conversions exist; non-commercial licence), point
# `INVVIZ_DEEPSIM` at the file: `load_generator_state` checks every key and shape. Nothing is downloaded.

# %%
path = os.environ.get("INVVIZ_DEEPSIM")
fc6 = DeePSiMFc6()
print(sum(p.numel() for p in fc6.parameters()) / 1e6, "M parameters; output", fc6.image_size, "px")
if path:
    load_generator_state(fc6, path)
    res = dgn_am(model, fc6.to(DEVICE), class_logit(309), steps=STEPS, size=SIZE, upper=torch.full((4096,), 30.0))
    res.images.shape
