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
# # Feature alignment: networks that decode their own latents
#
# Seed 000 trains an encoder so that a few gradient steps on a blank input, aligning its latent with a target latent,
# give back the image. This notebook shows the toy, Fashion-MNIST (Debian package `dataset-fashion-mnist`), the
# fine-tuning wrapper on the pretrained EfficientNet-Lite0, and `invviz.invert` for any model.
# (`INVVIZ_SMALL=1`: few steps.)

# %%
import invviz
import torch
import matplotlib.pyplot as plt
from invviz.align import (FashionEncoder, FeatureAligned, LocalFA, ToyNet, clamp_weights_, decode, fa_loss,
                          orthogonal_init_, toy_recover, train_aligned)
from _common import DEVICE, SMALL, pick

TOY_STEPS, FA_STEPS, WRAP_STEPS = pick((40, 4, 2), (1500, 1500, 300))

# %% [markdown]
# ## The toy: y = sin(3 pi x) with one extra latent neuron
# Recovery is one step from r = 0 on `|l_x - l_r|^2 + 0.01 |f_x - f_r|^2`; training with FA keeps the graph of that
# step. Without FA the sine is not invertible and most of the domain is lost (`benchmarks/fa_toy.py` measures it).

# %%
torch.manual_seed(0)
net = ToyNet(hidden=128 if SMALL else 1024)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for _ in range(TOY_STEPS):
    x = torch.rand(256, 1)
    loss = ((net(x)[:, :1] - torch.sin(3 * torch.pi * x)) ** 2).mean() + ((x - toy_recover(net, x, create_graph=True)) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
grid = torch.linspace(0, 1, 501)[:, None]
rec = toy_recover(net, grid).detach()
print("max recovery error", float((rec - grid).abs().max()))
plt.plot(grid, rec); plt.plot(grid, grid, "k--"); plt.xlabel("x"); plt.ylabel("recovered");

# %% [markdown]
# ## Fashion-MNIST with the authors' encoder
# 4 convolutions, FC 4096, latent 128; zeros start, T = 1, tau = 1, Adam 1e-4 (0.5, 0.999), orthogonal init, weight
# clamp. `benchmarks/fa_fashion.py` trains FA, VFA, VFA-GAN, local FA, an autoencoder and a VAE for the comparison
# table.

# %%
from invviz.data import fashion_mnist
from invviz.errors import DatasetNotFoundError
try:
    x, _ = fashion_mnist("train", limit=2048 if SMALL else None)
    xt, _ = fashion_mnist("test", limit=16)
except DatasetNotFoundError as err:  # apt-get install dataset-fashion-mnist
    print(err)
    x = xt = None
if x is not None:
    enc = orthogonal_init_(FashionEncoder(width=8 if SMALL else 32)).to(DEVICE)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-4, betas=(0.5, 0.999))
    for step in range(FA_STEPS):
        idx = torch.randint(0, len(x), (128,))
        loss, _, _ = fa_loss(enc, x[idx].to(DEVICE))
        opt.zero_grad(); loss.backward(); opt.step(); clamp_weights_(enc)
    xt = xt.clamp(0.01, 0.99).to(DEVICE)
    rec = decode(enc, enc(xt), tuple(xt.shape))
    print("test PSNR", float(invviz.metrics.psnr(xt.cpu(), rec.cpu()).mean()), "dB")
    invviz.plotting.show_images(torch.cat([xt[:8], rec[:8]]).expand(-1, 3, -1, -1).cpu());

# %% [markdown]
# ## VFA and VFA-GAN: sampling from the latent
# VFA adds mean / log-variance heads (`beta ~ U(0, 1)` per example on the KL term); samples are `z ~ N(0, I)` decoded
# by the same alignment step. VFA-GAN adds a refiner `G(r_hat)` and a least-squares discriminator, with the
# perceptual term on the encoder's mean and variance (lambda 0.01); the refiner starts as the identity. A class head
# (`classes=10`) appends class logits to the latent, so a one-hot vector there conditions a sample.

# %%
from invviz.align import VFAGAN, interpolate_latents, mean_latent
if x is not None:
    _, y = fashion_mnist("train", limit=len(x))
    gan = VFAGAN(orthogonal_init_(FashionEncoder(variational=True, classes=10, width=8 if SMALL else 32))).to(DEVICE)
    opts = {name: torch.optim.Adam(getattr(gan, name).parameters(), lr=1e-4, betas=(0.5, 0.999))
            for name in ("encoder", "refiner", "discriminator")}
    for step in range(FA_STEPS):
        idx = torch.randint(0, len(x), (128,))
        logs = gan.train_step(x[idx].to(DEVICE), opts, y[idx].to(DEVICE))
    print({k: round(float(v), 3) for k, v in logs.items()})
    samples = gan.sample(10, (1, 28, 28), classes=list(range(10)), class_scale=3.0)
    z = mean_latent(gan.encoder, xt[:2])
    path = gan.refiner(decode(gan.encoder, interpolate_latents(z[0], z[1], 6), (6, 1, 28, 28)))
    invviz.plotting.show_images(torch.cat([samples, path]).expand(-1, 3, -1, -1).cpu().detach());

# %% [markdown]
# ## Local FA: layer-wise training with asinh, reconstruction walking back with sinh

# %%
if x is not None:
    local = LocalFA((784, 256, 64))
    opt = torch.optim.Adam(local.parameters(), lr=1e-3)
    for step in range(FA_STEPS * 2):
        idx = torch.randint(0, len(x), (128,))
        local.train_step(x[idx], opt)  # each layer's loss is back-propagated alone: one layer's graph at a time
    rec = local.decode(local(xt.cpu())).clamp(0, 1).reshape(xt.shape)
    print("local FA test PSNR", float(invviz.metrics.psnr(xt.cpu(), rec).mean()), "dB")

# %% [markdown]
# ## The wrapper on a pretrained model, and `invert`
# `FeatureAligned` copies the model (yours is not modified), makes its pooled features decodable and keeps its
# predictions with a distillation loss to the frozen original. `invert` decodes an FA model's latent; any other model
# is inverted by optimization with a total-variation prior.

# %%
from invviz.data import photo_crops
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)
size = 64 if SMALL else 128
train = photo_crops(64 if SMALL else 2048, size, seed=0).to(DEVICE)
held = photo_crops(4, size, seed=123).to(DEVICE)
wrapped = FeatureAligned(model, steps=1, size=size)
before = invviz.invert(wrapped, held)
loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator())
train_aligned(wrapped, loader, max_steps=WRAP_STEPS, lr=1e-4, progress=False)
after = invviz.invert(wrapped, held)
plain = invviz.invert(model, held[:1], steps=20 if SMALL else 300)
print(before, after, plain, sep="\n")
invviz.plotting.show_images(torch.cat([held.cpu(), before.images, after.images]),
                            ["photo"] * 4 + ["before FA"] * 4 + ["after FA"] * 4);
