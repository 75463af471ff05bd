"""Writes the tutorial notebooks from the cells below (outputs stripped). Run: python tutorials/make_notebooks.py"""

from __future__ import annotations

import pathlib

import nbformat

HERE = pathlib.Path(__file__).parent

FEATURE_VISUALIZATION = [
    ("md", """# Feature visualization with invviz

What does a unit of a network respond to? Optimize an image so that the unit's activation grows (Olah et al.,
Lucid). This notebook renders units of the ImageNet-pretrained EfficientNet-Lite0 that ships offline, composes
objectives, compares parameterizations, renders a batch of units in one optimization, runs a ViT, and picks the
units that matter for a photo with captum.

Settings come from the environment: `INVVIZ_SMALL=1` (what the test suite uses on CPU) renders few steps at a
small size; without it, full settings (512 steps, 224 px) meant for a GPU."""),
    ("code", """import os
import invviz  # import invviz before torchvision on machines whose torchvision C ops do not match torch
import torch
import matplotlib.pyplot as plt
from invviz.optvis import channel, neuron, direction, deepdream, diversity, class_logit

SMALL = os.environ.get("INVVIZ_SMALL") == "1"
STEPS, SIZE = (24, 64) if SMALL else (512, 224)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
print(f"steps={STEPS} size={SIZE} device={DEVICE}")"""),
    ("md", """## The embedded model and its layers
`load_model` returns the plain timm model with its preprocessing attached; the normalization runs inside the
forward pass, never in the optimized image."""),
    ("code", """model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)
print(model.invviz_preprocessing)
table = invviz.list_layers(model)
print("\\n".join(str(table).splitlines()[:3]))
print([(r.name, r.shape, r.channels) for r in table if r.name.count(".") == 1 and r.name.startswith("blocks")][:8])"""),
    ("md", "## One channel, and one neuron"),
    ("code", """res = invviz.visualize(model, "blocks.4", 7, steps=STEPS, size=SIZE, progress=False)
res_n = invviz.visualize(model, None, neuron("blocks.4", 7), steps=STEPS, size=SIZE, progress=False)
print(res, res_n, sep="\\n")
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, r, t in zip(axes, [res, res_n], ["channel 7", "neuron 7 (centre)"]):
    ax.imshow(r.images[0].permute(1, 2, 0)); ax.set_title(t); ax.axis("off")
plt.figure(figsize=(4, 2.5)); plt.plot(res.history[:, 0]); plt.xlabel("step"); plt.ylabel("objective")"""),
    ("md", """## Many units in one optimization
A list of units renders unit *i* on batch element *i*: one forward/backward per step for all of them."""),
    ("code", """units = [0, 3, 7, 12, 20, 31]
batch = invviz.visualize(model, "blocks.4", units, steps=STEPS, size=SIZE, progress=False)
batch.show([f"blocks.4:{u}" for u in units]);"""),
    ("md", """## Composing objectives
Objectives add, subtract and scale. Diversity (negative Gram similarity across the batch) makes several images
of one unit differ; `direction` is Lucid's direction objective with a cosine power; `class_logit` targets a class."""),
    ("code", """obj = channel("blocks.5", 11) + 20.0 * diversity("blocks.5")
div = invviz.visualize(model, None, obj, batch=3, steps=STEPS, size=SIZE, progress=False)
div.show(["diverse 1", "diverse 2", "diverse 3"])
torch.manual_seed(0)
mix = direction("blocks.5", torch.rand(192), cossim_pow=1.0) - 0.5 * deepdream("blocks.3")
cat = invviz.visualize(model, None, class_logit(285), steps=STEPS, size=SIZE, progress=False)
print(mix, cat, sep="\\n")
cat.show(["class 285 (Egyptian cat)"]);"""),
    ("md", """## Parameterizations
Pixels, Lucid's spectral (FFT) basis with colour decorrelation, and MaCo's phase-only basis whose Fourier
magnitude is that of natural photos (measured on the photos shipped with matplotlib/scikit-image/scikit-learn)."""),
    ("code", """shown = []
for p in ["pixel", "fft", "maco"]:
    r = invviz.visualize(model, "blocks.4", 7, param=p, steps=STEPS, size=SIZE, progress=False,
                         lr=0.05 if p != "pixel" else 0.5)
    print(f"{p:6s} final objective {float(r.final[0]):.2f}")
    shown.append(r.images)
invviz.plotting.show_images(torch.cat(shown), ["pixel", "fft", "maco"]);"""),
    ("md", """## A vision transformer
Token outputs `(B, N, C)` become features `(B, C, H, W)`: class/register tokens are dropped and the grid comes from
the patch embedding. Pretrained ViT weights need a download, so this uses a randomly initialised timm ViT; with a
network, `invviz.load_model("vit_base_patch16_224")` works the same."""),
    ("code", """import timm
vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, reg_tokens=4, img_size=SIZE).eval().to(DEVICE)
cap_layout = invviz.list_layers(vit)
print([(r.name, r.shape, r.layout, r.channels) for r in cap_layout if r.name in ("blocks.5", "blocks.5.mlp.fc1")])
vr = invviz.visualize(vit, "blocks.5", [0, 1, 2], steps=STEPS, size=SIZE, progress=False)
vr.show(["vit blocks.5:0", ":1", ":2"]);"""),
    ("md", """## Which units matter for this photo? (captum)
`top_units` attributes the predicted class to a layer's channels with captum (gradient x activation or integrated
gradients) and returns the most important ones, which we then visualize: Lucid's semantic dictionary."""),
    ("code", """import torch.nn.functional as F
from invviz.data import load_photo
photo = F.interpolate(load_photo("chelsea")[None], size=224, mode="bilinear", antialias=True).to(DEVICE)
top = invviz.top_units(model, "blocks.5", photo, k=4)
print("class", top.target, "top units", top.units, [round(float(s), 2) for s in top.scores])
dictionary = invviz.visualize(model, "blocks.5", top.units, steps=STEPS, size=SIZE, progress=False)
shown = torch.cat([F.interpolate(photo.cpu(), size=SIZE, antialias=True, mode="bilinear"), dictionary.images])
invviz.plotting.show_images(shown, ["photo"] + [f"unit {u}" for u in top.units]);"""),
    ("md", "Saving: `result.save('grid.png')` writes a PNG grid; the CLI does the same: `invviz visualize tf_efficientnet_lite0 blocks.4 7 --out lite0.png`."),
]

INVERSE_FEATURE_VISUALIZATION = [
    ("md", """# Inverse feature visualization (Grad-IFV)

Given an image made by feature visualization, which objective was it optimized for? At an optimum of
`s(v, theta) = <v, theta> cos(v, theta)^p` the gradient `J^T M theta` vanishes, so the objective is the singular
vector of `M J` with the smallest singular value (seed 001). This notebook walks through the four experiments in
small form: recovery on the pretrained EfficientNet-Lite0, the critical space of a network with planted trivial
solutions, dropping the cosine term (p = 0), and other parameterizations. Full-size runs are the scripts
`benchmarks/ifv_experiment1.py` and `benchmarks/ifv_experiment2.py`.

`INVVIZ_SMALL=1` (the test suite on CPU) uses few steps and small images; without it, settings for a GPU."""),
    ("code", """import os
import invviz  # before torchvision
import torch
import matplotlib.pyplot as plt
from invviz.ifv import (realize, recover_objective, reoptimize, angle_deg, sample_targets, critical_spaces,
                        principal_angles, solve)
from invviz.ifv.plots import coefficient_bars, scatter_with_margins

SMALL = os.environ.get("INVVIZ_SMALL") == "1"
N, SIZE, ADAM, LBFGS, POINTS = (2, 48, 30, 5, 3) if SMALL else (16, 128, 800, 100, 9)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)"""),
    ("md", """## 1. Recover sampled targets
Targets are non-negative with Hoyer sparseness drawn uniformly. Realizations use Adam then L-BFGS, no random
transforms, one target per batch element; IFV then takes one Jacobian (batched vector-Jacobian products) per image.
The multi-point variant averages `M J` over points around the optimum: ReLU6 and max-pooling make the objective
non-smooth, and the smoothed objective's gradient vanishes more exactly. The offsets come in `+d, -d` pairs
(antithetic), so the smooth first-order change of the Jacobian cancels and only the non-smooth part is averaged;
the defaults (`radius=1e-3`) were chosen on held-out realizations by `benchmarks/ifv_multipoint_sweep.py`."""),
    ("code", """targets, hoyer = sample_targets(112, N, canonical=False, generator=torch.Generator().manual_seed(0))
real = realize(model, "blocks.4", targets, size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS)
print("gradient norm after Adam", real.grad_norm_adam.tolist(), "after L-BFGS", real.grad_norm.tolist())
plain, multi, resp, coeffs = [], [], [], []
for i in range(N):
    r = recover_objective(model, "blocks.4", real.element(i), target=targets[i])
    m = recover_objective(model, "blocks.4", real.element(i), points=POINTS)
    plain.append(angle_deg(r.direction, targets[i])); multi.append(angle_deg(m.direction, targets[i]))
    resp.append(angle_deg(r.response, targets[i])); coeffs.append(r.target_coefficients)
print("prediction (deg)", [round(a, 1) for a in plain])
print("multi-point (deg)", [round(a, 1) for a in multi])
print("feature response (deg)", [round(a, 1) for a in resp])
scatter_with_margins(plain, resp, "prediction (deg)", "feature response (deg)", extra=(multi, "multi-point"))
coefficient_bars(torch.stack(coeffs));"""),
    ("md", "Re-optimizing each realization under the predicted objective barely changes it (SSIM near 1)."),
    ("code", """preds = torch.stack([recover_objective(model, "blocks.4", real.element(i)).direction for i in range(N)])
ssim, after = reoptimize(model, "blocks.4", real.param, preds, steps=50 if SMALL else 500)
print("SSIM before/after re-optimization:", [round(float(s), 3) for s in ssim])
invviz.plotting.show_images(torch.cat([real.images, after]), [f"target {i}" for i in range(N)] + ["re-optimized"] * N);"""),
    ("md", """## 2. The critical space
A classifier whose feature layer has trivial solutions: a dead unit and logit weights that sum to zero over classes
(softmax shift invariance). Both directions are in the co-kernel of every Jacobian, so unrestricted IFV returns them.
Algorithm 1 intersects the per-sample co-kernels (principal angles, SLERP merging) and lists every distinct critical
space over the threshold eps by nested intervals. (Trained on Fashion-MNIST in `benchmarks/ifv_experiment2.py`;
here a random network, which has the same planted structure.)"""),
    ("code", """from torch import nn
from invviz.models import Preprocessing
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ELU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 32),
                    nn.ELU(), nn.Linear(32, 11)).eval()
net.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 28, 28))
with torch.no_grad():
    net[-1].weight[10] = 0; net[-1].bias[10] = 0                       # a dead unit
    net[-1].weight[:10] -= net[-1].weight[:10].mean(0); net[-1].bias[:10] -= net[-1].bias[:10].mean()
planted = torch.zeros(11, 2); planted[10, 0] = 1; planted[:10, 1] = 10 ** -0.5
t2, _ = sample_targets(11, 4 if SMALL else 24, canonical=False, generator=torch.Generator().manual_seed(1))
real2 = realize(net, "6", t2, aggregation="mean", size=28, adam_steps=ADAM, lbfgs_steps=LBFGS)
recs = [recover_objective(net, "6", real2.element(i), aggregation="mean") for i in range(len(t2))]
spaces = critical_spaces(recs)
print([(f"{s.eps_low:.2g}-{s.eps_high:.2g}", s.dim) for s in spaces])
crit = spaces[0]
angles, _, _ = principal_angles(crit.kernel.double(), planted.double())
print("largest angle between the found co-kernel and the planted directions:", float(torch.rad2deg(angles.max())))
proj = torch.eye(11) - planted @ planted.T
for i in range(len(t2)):
    free = recs[i].direction
    inside = recover_objective(net, "6", real2.element(i), aggregation="mean", critical_space=crit.basis).direction
    print(f"target {i}: unrestricted {angle_deg(free, proj @ t2[i]):.1f} deg, in the critical space"
          f" {angle_deg(inside, proj @ t2[i]):.1f} deg")"""),
    ("md", """## 3. Without the cosine term (p = 0), and 4. other parameterizations
With p = 0 the objective is linear in the response; the aggregation decides whether the optimum is informative.
The recovery works on the free variables of whatever produced the image: pixels, or Lucid's FFT basis."""),
    ("code", """t3 = targets[:1]
for agg in ["maxpool_mean", "mean", "pick"]:
    r3 = realize(model, "blocks.4", t3, cossim_pow=0.0, aggregation=agg, size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS)
    rec = recover_objective(model, "blocks.4", r3.element(0), cossim_pow=0.0, aggregation=agg)
    print(f"p=0 {agg:13s}: {angle_deg(rec.direction, t3[0]):.1f} deg (response {angle_deg(rec.response, t3[0]):.1f})")
for param in ["pixel", "fft"]:
    r4 = realize(model, "blocks.4", t3, param=param, size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS)
    rec = recover_objective(model, "blocks.4", r4.element(0))
    print(f"{param:6s}: {angle_deg(rec.direction, t3[0]):.1f} deg")"""),
    ("md", """## Comparing networks
`match` visualizes a feature in network A and recovers the direction of network B for the same image: here A and B
are Lite0 and Lite0 with the channels of `blocks.4` permuted; the permutation comes back
(`benchmarks/ifv_match.py` also runs Lite0 against Lite1)."""),
    ("code", """import copy
from invviz.ifv import match
perm = torch.randperm(112, generator=torch.Generator().manual_seed(0))
other = copy.deepcopy(model)
with torch.no_grad():
    for block in other.blocks[4]:
        block.conv_pwl.weight.copy_(block.conv_pwl.weight[perm])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(block.bn3, name).copy_(getattr(block.bn3, name)[perm])
    for block in list(other.blocks[4])[1:] + [other.blocks[5][0]]:
        block.conv_pw.weight.copy_(block.conv_pw.weight[:, perm])
m = match(model, "blocks.4", 7, other, "blocks.4", size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS,
          reopt_steps=20 if SMALL else 200)
print("expected unit", int((perm == 7).nonzero()), "matched", m.top_units[:3], "SSIM", round(m.ssim, 3))"""),
]

GENERATOR_PRIORS = [
    ("md", """# Generator priors: DGN-AM and PPGN-h

Instead of optimizing pixels, search the code space of an image generator (DGN-AM), and add a learned prior on the
code with a Langevin-style sampler (PPGN-h) (seed 002). invviz trains its own generator for any encoder, so the
samplers work with any timm/torchvision classifier. Here: a compact generator learns to invert the pooled features of
the pretrained EfficientNet-Lite0 on crops of the photos that ship with scikit-image/scikit-learn/matplotlib; then
both samplers visualize a class and a hidden unit. (`INVVIZ_SMALL=1`: a few training steps only.)"""),
    ("code", """import os
import invviz
import torch
from invviz.data import photo_crops
from invviz.optvis import channel, class_logit
from invviz.priors import (CompactGenerator, DeePSiMFc6, JointPrior, LayerFeatures, code_statistics, dgn_am,
                           load_generator_state, ppgn_h, train_code_dae, train_generator)

SMALL = os.environ.get("INVVIZ_SMALL") == "1"
GEN_STEPS, STEPS, SIZE = (5, 6, 48) if SMALL else (3000, 200, 224)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)"""),
    ("md", "## Train a generator that inverts the pooled features, and the code prior"),
    ("code", """crops = photo_crops(96 if SMALL else 4096, 64, seed=0).to(DEVICE)
encoder = LayerFeatures(model, "global_pool")
comparator = LayerFeatures(model, "blocks.2", pool=False)
gen = CompactGenerator(code_dim=1280, size=64).to(DEVICE)
loader = torch.utils.data.DataLoader(crops, batch_size=32, shuffle=True, generator=torch.Generator())
hist = train_generator(gen, encoder, comparator, loader, max_steps=GEN_STEPS, progress=False)
print("pixel loss", hist[0]["pixel"], "->", hist[-1]["pixel"])
stats = code_statistics(encoder, torch.utils.data.DataLoader(crops, batch_size=128), device=DEVICE)
gen.set_code_bounds(stats["upper"])
dae, _ = train_code_dae(stats["codes"], epochs=5 if SMALL else 50, progress=False)
with torch.no_grad():
    recon = gen(encoder(crops[:6]))
invviz.plotting.show_images(torch.cat([crops[:6].cpu(), recon.cpu()]), ["photo"] * 6 + ["G(E(x))"] * 6);"""),
    ("md", """## DGN-AM: a class and a hidden unit
Normalized gradient steps on the code, learning rate falling linearly, codes clipped to [0, ub], decay 0.99; the
trajectory of the activation (and the class probability) comes back per step and chain."""),
    ("code", """cls = dgn_am(model, gen, class_logit(309), steps=STEPS, chains=2, size=SIZE, monitor_class=309)
unit = dgn_am(model, gen, channel("blocks.5", 11), steps=STEPS, chains=2, size=SIZE)
print("class logit", cls.activation[[0, -1]].tolist(), "p", cls.probability[-1].tolist())
print("unit", unit.activation[[0, -1]].tolist())
invviz.plotting.show_images(torch.cat([cls.images, unit.images]), ["bee"] * 2 + ["blocks.5:11"] * 2);"""),
    ("md", """## PPGN-h
The authors' step: `d = eps1 (R(h) - h) + eps2 g + N(0, eps3^2)`, `h <- h + eta d / mean|d|`, with the code DAE as `R`
(or `R(h) = E(G(h))`), the authors' `(1 - p) d logit` gradient or the exact log-softmax one. As in their sampler, the
images along the chain whose class probability passes the threshold are the samples (`save_every` steps apart)."""),
    ("code", """pp = ppgn_h(model, gen, dae.to(DEVICE), 309, steps=STEPS, chains=3, size=SIZE, upper=gen.upper_bounds,
            save_every=max(1, STEPS // 10), threshold=0.0 if SMALL else 0.9)
ex = ppgn_h(model, gen, JointPrior(encoder, gen), 309, steps=STEPS, chains=3, size=SIZE, gradient="exact",
            upper=gen.upper_bounds)
print("p at the end", pp.probability[-1].tolist(), "last image above the threshold", pp.kept.tolist())
print(len(pp.samples), "samples kept along the chains, at steps", pp.sample_steps.tolist())
print("exact gradient, E(G(h)) prior:", ex.probability[-1].tolist())
invviz.plotting.show_images(torch.cat([pp.images, ex.images]), ["PPGN-h DAE"] * 3 + ["PPGN-h E(G(h))"] * 3)
if len(pp.samples):
    invviz.plotting.show_images(pp.samples[:8], [f"step {s}" for s in pp.sample_steps[:8].tolist()]);"""),
    ("md", """## The original DeePSiM fc6 generator
With converted fc6 weights on disk (public PyTorch conversions exist; non-commercial licence), point
`INVVIZ_DEEPSIM` at the file: `load_generator_state` checks every key and shape. Nothing is downloaded."""),
    ("code", """path = os.environ.get("INVVIZ_DEEPSIM")
fc6 = DeePSiMFc6()
print(sum(p.numel() for p in fc6.parameters()) / 1e6, "M parameters; output", fc6.image_size, "px")
if path:
    load_generator_state(fc6, path)
    res = dgn_am(model, fc6.to(DEVICE), class_logit(309), steps=STEPS, size=SIZE, upper=torch.full((4096,), 30.0))
    res.images.shape"""),
]

FEATURE_ALIGNMENT = [
    ("md", """# Feature alignment: networks that decode their own latents

Seed 000 trains an encoder so that a few gradient steps on a blank input, aligning its latent with a target latent,
give back the image. This notebook shows the toy, Fashion-MNIST (Debian package `dataset-fashion-mnist`), the
fine-tuning wrapper on the pretrained EfficientNet-Lite0, and `invviz.invert` for any model.
(`INVVIZ_SMALL=1`: few steps.)"""),
    ("code", """import os
import invviz
import torch
import matplotlib.pyplot as plt
from invviz.align import (FashionEncoder, FeatureAligned, LocalFA, ToyNet, clamp_weights_, decode, fa_loss,
                          orthogonal_init_, toy_recover, train_aligned)

SMALL = os.environ.get("INVVIZ_SMALL") == "1"
TOY_STEPS, FA_STEPS, WRAP_STEPS = (60, 8, 2) if SMALL else (1500, 1500, 300)
DEVICE = "cuda" if torch.cuda.is_available() else 'cpu'"""),
    ("md", """## The toy: y = sin(3 pi x) with one extra latent neuron
Recovery is one step from r = 0 on `|l_x - l_r|^2 + 0.01 |f_x - f_r|^2`; training with FA keeps the graph of that
step. Without FA the sine is not invertible and most of the domain is lost (`benchmarks/fa_toy.py` measures it)."""),
    ("code", """torch.manual_seed(0)
net = ToyNet(hidden=128 if SMALL else 1024)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for _ in range(TOY_STEPS):
    x = torch.rand(256, 1)
    loss = ((net(x)[:, :1] - torch.sin(3 * torch.pi * x)) ** 2).mean() + ((x - toy_recover(net, x, create_graph=True)) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
grid = torch.linspace(0, 1, 501)[:, None]
rec = toy_recover(net, grid).detach()
print("max recovery error", float((rec - grid).abs().max()))
plt.plot(grid, rec); plt.plot(grid, grid, "k--"); plt.xlabel("x"); plt.ylabel("recovered");"""),
    ("md", """## Fashion-MNIST with the authors' encoder
4 convolutions, FC 4096, latent 128; zeros start, T = 1, tau = 1, Adam 1e-4 (0.5, 0.999), orthogonal init, weight
clamp. `benchmarks/fa_fashion.py` trains FA, VFA, VFA-GAN, local FA, an autoencoder and a VAE for the comparison
table."""),
    ("code", """from invviz.data import fashion_mnist
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
    invviz.plotting.show_images(torch.cat([xt[:8], rec[:8]]).expand(-1, 3, -1, -1).cpu());"""),
    ("md", """## VFA and VFA-GAN: sampling from the latent
VFA adds mean / log-variance heads (`beta ~ U(0, 1)` per example on the KL term); samples are `z ~ N(0, I)` decoded
by the same alignment step. VFA-GAN adds a refiner `G(r_hat)` and a least-squares discriminator, with the
perceptual term on the encoder's mean and variance (lambda 0.01); the refiner starts as the identity. A class head
(`classes=10`) appends class logits to the latent, so a one-hot vector there conditions a sample."""),
    ("code", """from invviz.align import VFAGAN, interpolate_latents, mean_latent
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
    invviz.plotting.show_images(torch.cat([samples, path]).expand(-1, 3, -1, -1).cpu().detach());"""),
    ("md", """## Local FA: layer-wise training with asinh, reconstruction walking back with sinh"""),
    ("code", """if x is not None:
    local = LocalFA((784, 256, 64))
    opt = torch.optim.Adam(local.parameters(), lr=1e-3)
    for step in range(FA_STEPS * 2):
        idx = torch.randint(0, len(x), (128,))
        local.train_step(x[idx], opt)  # each layer's loss is back-propagated alone: one layer's graph at a time
    rec = local.decode(local(xt.cpu())).clamp(0, 1).reshape(xt.shape)
    print("local FA test PSNR", float(invviz.metrics.psnr(xt.cpu(), rec).mean()), "dB")"""),
    ("md", """## The wrapper on a pretrained model, and `invert`
`FeatureAligned` copies the model (yours is not modified), makes its pooled features decodable and keeps its
predictions with a distillation loss to the frozen original. `invert` decodes an FA model's latent; any other model
is inverted by optimization with a total-variation prior."""),
    ("code", """from invviz.data import photo_crops
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
print(before, after, plain, sep="\\n")
invviz.plotting.show_images(torch.cat([held.cpu(), before.images, after.images]),
                            ["photo"] * 4 + ["before FA"] * 4 + ["after FA"] * 4);"""),
]

NOTEBOOKS = {"01_feature_visualization.ipynb": FEATURE_VISUALIZATION,
             "02_inverse_feature_visualization.ipynb": INVERSE_FEATURE_VISUALIZATION,
             "03_generator_priors.ipynb": GENERATOR_PRIORS,
             "04_feature_alignment.ipynb": FEATURE_ALIGNMENT}


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
                for kind, src in cells]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"  # stable ids: regenerating a notebook changes only what changed
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build(cells), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
