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
# # Feature visualization with invviz
#
# What does a unit of a network respond to? Optimize an image so that the unit's activation grows (Olah et al.,
# Lucid). This notebook renders units of the ImageNet-pretrained EfficientNet-Lite0 that ships offline, composes
# objectives, compares parameterizations, renders a batch of units in one optimization, runs a ViT, and picks the
# units that matter for a photo with captum.
#
# Settings come from the environment: `INVVIZ_SMALL=1` (what the test suite uses on CPU) renders few steps at a
# small size; without it, full settings (512 steps, 224 px) meant for a GPU.

# %%
import invviz
import torch
import matplotlib.pyplot as plt
from invviz.optvis import channel, neuron, direction, deepdream, diversity, class_logit
from _common import DEVICE, SMALL, pick

STEPS, SIZE = pick((16, 48), (512, 224))

# %% [markdown]
# ## The embedded model and its layers
# `load_model` returns the plain timm model with its preprocessing attached; the normalization runs inside the
# forward pass, never in the optimized image.

# %%
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)
print(model.invviz_preprocessing)
table = invviz.list_layers(model)
print("\n".join(str(table).splitlines()[:3]))
print([(r.name, r.shape, r.channels) for r in table if r.name.count(".") == 1 and r.name.startswith("blocks")][:8])

# %% [markdown]
# ## One channel, and one neuron

# %%
res = invviz.visualize(model, "blocks.4", 7, steps=STEPS, size=SIZE, progress=False)
res_n = invviz.visualize(model, None, neuron("blocks.4", 7), steps=STEPS, size=SIZE, progress=False)
print(res, res_n, sep="\n")
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, r, t in zip(axes, [res, res_n], ["channel 7", "neuron 7 (centre)"]):
    ax.imshow(r.images[0].permute(1, 2, 0)); ax.set_title(t); ax.axis("off")
plt.figure(figsize=(4, 2.5)); plt.plot(res.history[:, 0]); plt.xlabel("step"); plt.ylabel("objective")

# %% [markdown]
# ## Many units in one optimization
# A list of units renders unit *i* on batch element *i*: one forward/backward per step for all of them.

# %%
units = [0, 3, 7, 12, 20, 31]
batch = invviz.visualize(model, "blocks.4", units, steps=STEPS, size=SIZE, progress=False)
batch.show([f"blocks.4:{u}" for u in units]);

# %% [markdown]
# ## Composing objectives
# Objectives add, subtract and scale. Diversity (negative Gram similarity across the batch) makes several images
# of one unit differ; `direction` is Lucid's direction objective with a cosine power; `class_logit` targets a class.

# %%
obj = channel("blocks.5", 11) + 20.0 * diversity("blocks.5")
div = invviz.visualize(model, None, obj, batch=3, steps=STEPS, size=SIZE, progress=False)
div.show(["diverse 1", "diverse 2", "diverse 3"])
torch.manual_seed(0)
mix = direction("blocks.5", torch.rand(192), cossim_pow=1.0) - 0.5 * deepdream("blocks.3")
cat = invviz.visualize(model, None, class_logit(285), steps=STEPS, size=SIZE, progress=False)
print(mix, cat, sep="\n")
cat.show(["class 285 (Egyptian cat)"]);

# %% [markdown]
# ## Parameterizations
# Pixels, Lucid's spectral (FFT) basis with colour decorrelation, and MaCo's phase-only basis whose Fourier
# magnitude is that of natural photos (measured on the photos shipped with matplotlib/scikit-image/scikit-learn).

# %%
shown = []
for p in ["pixel", "fft", "maco"]:
    r = invviz.visualize(model, "blocks.4", 7, param=p, steps=STEPS, size=SIZE, progress=False,
                         lr=0.05 if p != "pixel" else 0.5)
    print(f"{p:6s} final objective {float(r.final[0]):.2f}")
    shown.append(r.images)
invviz.plotting.show_images(torch.cat(shown), ["pixel", "fft", "maco"]);

# %% [markdown]
# ## A vision transformer
# Token outputs `(B, N, C)` become features `(B, C, H, W)`: class/register tokens are dropped and the grid comes from
# the patch embedding. Pretrained ViT weights need a download, so this uses a randomly initialised timm ViT; with a
# network, `invviz.load_model("vit_base_patch16_224")` works the same.

# %%
import timm
vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, reg_tokens=4, img_size=SIZE).eval().to(DEVICE)
cap_layout = invviz.list_layers(vit)
print([(r.name, r.shape, r.layout, r.channels) for r in cap_layout if r.name in ("blocks.5", "blocks.5.mlp.fc1")])
vr = invviz.visualize(vit, "blocks.5", [0, 1, 2], steps=STEPS, size=SIZE, progress=False)
vr.show(["vit blocks.5:0", ":1", ":2"]);

# %% [markdown]
# ## Which units matter for this photo? (captum)
# `top_units` attributes the predicted class to a layer's channels with captum (gradient x activation or integrated
# gradients) and returns the most important ones, which we then visualize: Lucid's semantic dictionary.

# %%
import torch.nn.functional as F
from invviz.data import load_photo
photo = F.interpolate(load_photo("chelsea")[None], size=224, mode="bilinear", antialias=True).to(DEVICE)
top = invviz.top_units(model, "blocks.5", photo, k=4)
print("class", top.target, "top units", top.units, [round(float(s), 2) for s in top.scores])
dictionary = invviz.visualize(model, "blocks.5", top.units, steps=STEPS, size=SIZE, progress=False)
shown = torch.cat([F.interpolate(photo.cpu(), size=SIZE, antialias=True, mode="bilinear"), dictionary.images])
invviz.plotting.show_images(shown, ["photo"] + [f"unit {u}" for u in top.units]);

# %% [markdown]
# Saving: `result.save('grid.png')` writes a PNG grid; the CLI does the same: `invviz visualize tf_efficientnet_lite0 blocks.4 7 --out lite0.png`.
