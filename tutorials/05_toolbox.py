# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The rest of the toolbox
#
# What Lucid, captum.optim and Horama offer beyond the core, on the embedded EfficientNet-Lite0: a CPPN
# parameterization (Mordvintsev et al. 2018), feature accentuation from a photo (Hamblin et al. 2024), MaCo's
# importance map (Fel et al. 2023), building blocks by NMF (Olah et al. 2018), Lucid's redirected ReLU, Lucid's other
# objectives, and more transforms. Each runs on the one render loop; `INVVIZ_SMALL=1` (the test suite) uses few
# steps and small images.

# %%
import invviz
import torch
import matplotlib.pyplot as plt
from invviz.optvis import (CPPNImage, GaussianBlur, Normal, RandomCrop, RandomFlip, Translate, Uniform, alignment,
                           channel, channel_interpolate, l2, penalize_boundary_complexity, render, units,
                           whitened_direction, whitening)
from _common import DEVICE, SMALL, pick

STEPS, SIZE = pick((12, 48), (512, 224))
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)
photo = invviz.data.load_photo("chelsea", SIZE)

# %% [markdown]
# ## A CPPN: an image drawn from coordinates
# The free variables are the weights of a small per-pixel network from `(x, y)` to RGB, so one render can be drawn at
# any resolution afterwards. Lucid renders CPPNs with Adam at a small learning rate.

# %%
cppn = CPPNImage(SIZE, batch=2, rng=torch.Generator().manual_seed(0))
res = render(model, channel("blocks.4", [7, 20]), cppn, steps=pick(20, 1024), lr=0.005)
with torch.no_grad():
    big = cppn.draw(4 * SIZE).cpu()
invviz.plotting.show_images(torch.cat([res.images, big[:, :, ::4, ::4]]), ["unit 7", "unit 20",
                                                                          "drawn at 4x, shown at 1x", ""])
print("objective on the final images", res.final.tolist(), "; drawn at", tuple(big.shape[2:]))

# %% [markdown]
# ## Starting from a photo, and feature accentuation
# `init=` starts a pixel or FFT parameterization from an image (exactly, at step 0). `accentuate` raises an objective
# from a photo while keeping the photo's features at a reference layer close: the change shows what the unit
# responds to in this photo. With `reg_weight=0` it is plain optimization from the photo.

# %%
plain = invviz.accentuate(model, "blocks.5", 11, photo, reg_layer="blocks.2", reg_weight=0.0, steps=STEPS)
kept = invviz.accentuate(model, "blocks.5", 11, photo, reg_layer="blocks.2", reg_weight=100.0, steps=STEPS)
for name, r in [("plain", plain), ("accentuated", kept)]:
    print(f"{name:12s} objective {float(r.monitored['objective'][0]):.2f} -> {float(r.monitored['objective'][-1]):.2f},"
          f" feature distance to the photo {float(r.monitored['distance'][-1]):.3f}")
invviz.plotting.show_images(torch.cat([photo[None], plain.images, kept.images]), ["photo", "plain", "accentuated"])

# %% [markdown]
# ## Where the visualization comes from: MaCo's importance map
# `importance=True` accumulates the magnitude of the objective's gradient on the image over the steps; shown as
# transparency, it keeps the parts of the visualization the unit depends on.

# %%
imp = invviz.visualize(model, "blocks.4", [7, 20], steps=STEPS, size=SIZE, param="maco", importance=True,
                       progress=False)
imp.show(["unit 7", "unit 20"], alpha=True);

# %% [markdown]
# ## Building blocks: what the network sees where, by NMF
# The activations of a layer on a photo `(H*W, C)` factor (scikit-learn's NMF) into `k` spatial maps and `k` channel
# directions; each direction is rendered with the `direction` objective. The photo's cat, background and edges
# separate into different factors.

# %%
# NMF needs non-negative activations: a layer after a ReLU6 (inside the block: the depthwise stage's output)
blocks = invviz.factorize(model, "blocks.4.2.bn2", invviz.data.load_photo("chelsea", 224), 3, steps=STEPS, size=SIZE)
print(f"relative reconstruction error {blocks.relative_error:.3f}")
blocks.figure();

# %% [markdown]
# ## Redirected ReLU
# For the first steps, gradient also passes through ReLUs that are off (Lucid's `redirected_relu_grad`), so units
# that are silent at the start image still move; the modules are restored after. Unit 1 of the head (`bn2`, after
# its ReLU6) is zero everywhere on the start image: plain rendering never moves it.

# %%
r_plain = invviz.visualize(model, "bn2", 1, steps=STEPS, size=SIZE, progress=False)
r_redir = invviz.visualize(model, "bn2", 1, steps=STEPS, size=SIZE, progress=False, redirected_relu=STEPS // 2)
print("final objective: plain", float(r_plain.final[0]), "redirected", float(r_redir.final[0]))
invviz.plotting.show_images(torch.cat([r_plain.images, r_redir.images]), ["plain", "redirected ReLU"]);

# %% [markdown]
# ## Lucid's other objectives
# Penalties (`l1`, `l2`, `blur_input_each_step`, `penalize_boundary_complexity`), a morph across the batch
# (`channel_interpolate`, with `alignment` keeping neighbours alike), neuron groups at positions, a whitened direction,
# and objectives mixed with numbers and raised to powers.

# %%
morph = channel_interpolate("blocks.4", 7, "blocks.4", 20) + 0.5 * alignment("blocks.4")
m = invviz.visualize(model, None, morph, batch=4, steps=STEPS, size=SIZE, progress=False)
m.show(["unit 7", "", "", "unit 20"])
group = units("blocks.4", {7: 1.0, 20: 0.5}, positions=[(1, 1), (2, 2)]) - 1e-4 * l2() + 0.1
framed = channel("blocks.4", 7) ** 1 + 1e-3 * penalize_boundary_complexity(w=SIZE // 8)
with torch.no_grad():
    acts = invviz.models.features(model, ["blocks.4"], torch.stack([photo, photo.flip(2)]))["blocks.4"]
S = whitening(acts)
white = whitened_direction("blocks.4", torch.eye(112)[7], S, mean_over_space=True)
shown = [invviz.visualize(model, None, o, steps=STEPS, size=SIZE, progress=False).images
         for o in (group, framed, white)]
invviz.plotting.show_images(torch.cat(shown), ["neuron group", "plain border", "whitened direction"]);

# %% [markdown]
# ## More transforms
# Gaussian blur, random crops, flips, reflection padding, size-preserving shifts, and angles or scales drawn from
# distributions; `"fused"` applies Lucid's standard draws as one affine resampling at the render size.

# %%
tf = [Translate(4), GaussianBlur(Uniform(0.3, 1.0)), RandomFlip(0.5), RandomCrop(SIZE - 8),
      invviz.optvis.RandomRotate(Normal(0.0, 5.0)), invviz.optvis.RandomScale(Uniform(0.95, 1.05))]
custom_tf = invviz.visualize(model, "blocks.4", 7, steps=STEPS, size=SIZE, transforms=tf, progress=False)
fused = invviz.visualize(model, "blocks.4", 7, steps=STEPS, size=SIZE, transforms="fused", progress=False)
invviz.plotting.show_images(torch.cat([custom_tf.images, fused.images]), ["custom transforms", "fused standard"]);
