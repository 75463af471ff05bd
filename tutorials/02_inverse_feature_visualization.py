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
# # Inverse feature visualization (Grad-IFV)
#
# Given an image made by feature visualization, which objective was it optimized for? At an optimum of
# `s(v, theta) = <v, theta> cos(v, theta)^p` the gradient `J^T M theta` vanishes, so the objective is the singular
# vector of `M J` with the smallest singular value (Reinbold & Westermann 2020). This notebook walks through the four experiments in
# small form: recovery on the pretrained EfficientNet-Lite0, the critical space of a network with planted trivial
# solutions, dropping the cosine term (p = 0), and other parameterizations. Full-size runs are the scripts
# `benchmarks/ifv_experiment1.py` and `benchmarks/ifv_experiment2.py`.
#
# `INVVIZ_SMALL=1` (the test suite on CPU) uses few steps and small images; without it, settings for a GPU.

# %%
import invviz
import torch
import matplotlib.pyplot as plt
from invviz.ifv import (IFVObjective, realize, recover_objective, reoptimize, angle_deg, sample_targets,
                        critical_spaces, principal_angles, solve)
from invviz.ifv.plots import coefficient_bars, scatter_with_margins
from _common import DEVICE, SMALL, pick

N, SIZE, ADAM, LBFGS, POINTS = pick((2, 40, 20, 3, 3), (16, 128, 800, 100, 9))
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)

# %% [markdown]
# ## 1. Recover sampled targets
# Targets are non-negative with Hoyer sparseness drawn uniformly. Realizations use Adam then L-BFGS, no random
# transforms, one target per batch element; IFV then takes one Jacobian (batched vector-Jacobian products) per image.
# The multi-point variant averages `M J` over points around the optimum: ReLU6 and max-pooling make the objective
# non-smooth, and the smoothed objective's gradient vanishes more exactly. The offsets come in `+d, -d` pairs
# (antithetic), so the smooth first-order change of the Jacobian cancels and only the non-smooth part is averaged;
# the defaults (`radius=1e-3`) were chosen on held-out realizations by `benchmarks/ifv_multipoint_sweep.py`.

# %%
targets, hoyer = sample_targets(112, N, canonical=False, rng=torch.Generator().manual_seed(0))
real = realize(model, "blocks.4", targets, size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS)
print("gradient norm after Adam", real.grad_norm_adam.tolist(), "after L-BFGS", real.grad_norm.tolist())
plain, multi, resp, coeffs = [], [], [], []
for i in range(N):
    r = recover_objective(model, "blocks.4", real.element(i), target=targets[i], points=1)  # the paper's solver
    m = recover_objective(model, "blocks.4", real.element(i), points=POINTS)  # the default: 9 points
    plain.append(angle_deg(r.direction, targets[i])); multi.append(angle_deg(m.direction, targets[i]))
    resp.append(angle_deg(r.response, targets[i])); coeffs.append(r.target_coefficients)
print("prediction (deg)", [round(a, 1) for a in plain])
print("multi-point (deg)", [round(a, 1) for a in multi])
print("feature response (deg)", [round(a, 1) for a in resp])
scatter_with_margins(plain, resp, "prediction (deg)", "feature response (deg)", extra=(multi, "multi-point"))
coefficient_bars(torch.stack(coeffs));

# %% [markdown]
# Re-optimizing each realization under the predicted objective barely changes it (SSIM near 1).

# %%
preds = torch.stack([recover_objective(model, "blocks.4", real.element(i), points=POINTS).direction
                     for i in range(N)])
ssim, after = reoptimize(model, "blocks.4", real.param, preds, steps=pick(20, 500))
print("SSIM before/after re-optimization:", [round(float(s), 3) for s in ssim])
invviz.plotting.show_images(torch.cat([real.images, after]), [f"target {i}" for i in range(N)] + ["re-optimized"] * N);

# %% [markdown]
# ## 2. The critical space
# A classifier whose feature layer has trivial solutions: a dead unit and logit weights that sum to zero over classes
# (softmax shift invariance). Both directions are in the co-kernel of every Jacobian, so unrestricted IFV returns them.
# Algorithm 1 intersects the per-sample co-kernels (principal angles, SLERP merging) and lists every distinct critical
# space over the threshold eps by nested intervals. (Trained on Fashion-MNIST in `benchmarks/ifv_experiment2.py`;
# here a random network, which has the same planted structure.)

# %%
from torch import nn
from invviz.models import Preprocessing
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ELU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 32),
                    nn.ELU(), nn.Linear(32, 11)).eval()
# how the net reads images (no normalization, 28 px), said once in the probe every verb below takes
probe = invviz.Probe(net, preprocessing=Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 28, 28)))
with torch.no_grad():
    net[-1].weight[10] = 0; net[-1].bias[10] = 0                       # a dead unit
    net[-1].weight[:10] -= net[-1].weight[:10].mean(0); net[-1].bias[:10] -= net[-1].bias[:10].mean()
planted = torch.zeros(11, 2); planted[10, 0] = 1; planted[:10, 1] = 10 ** -0.5
t2, _ = sample_targets(11, 4 if SMALL else 24, canonical=False, rng=torch.Generator().manual_seed(1))
mean = IFVObjective(aggregation="mean")  # the objective's form: the spatial mean, cosine power 1
real2 = realize(probe, "6", t2, form=mean, size=28, adam_steps=ADAM, lbfgs_steps=LBFGS)
recs = [recover_objective(probe, "6", real2.element(i), form=mean, points=1) for i in range(len(t2))]
spaces = critical_spaces(recs)
print([(f"{s.eps_low:.2g}-{s.eps_high:.2g}", s.dim) for s in spaces])
crit = spaces[0]
angles, _, _ = principal_angles(crit.kernel.double(), planted.double())
print("largest angle between the found co-kernel and the planted directions:", float(torch.rad2deg(angles.max())))
proj = torch.eye(11) - planted @ planted.T
for i in range(len(t2)):
    free = recs[i].direction
    inside = recover_objective(probe, "6", real2.element(i), form=mean, critical_space=crit.basis, points=1).direction
    print(f"target {i}: unrestricted {angle_deg(free, proj @ t2[i]):.1f} deg, in the critical space"
          f" {angle_deg(inside, proj @ t2[i]):.1f} deg")

# %% [markdown]
# ## 3. Without the cosine term (p = 0), and 4. other parameterizations
# With p = 0 the objective is linear in the response; the aggregation decides whether the optimum is informative.
# The recovery works on the free variables of whatever produced the image: pixels, or Lucid's FFT basis.

# %%
t3 = targets[:1]
for agg in ["maxpool_mean", "mean", "pick"]:
    linear = IFVObjective(cossim_pow=0.0, aggregation=agg)
    r3 = realize(model, "blocks.4", t3, form=linear, size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS)
    rec = recover_objective(model, "blocks.4", r3.element(0), form=linear, points=POINTS)
    print(f"p=0 {agg:13s}: {angle_deg(rec.direction, t3[0]):.1f} deg (response {angle_deg(rec.response, t3[0]):.1f})")
for param in ["pixel", "fft"]:
    r4 = realize(model, "blocks.4", t3, param=param, size=SIZE, adam_steps=ADAM, lbfgs_steps=LBFGS)
    rec = recover_objective(model, "blocks.4", r4.element(0), points=POINTS)
    print(f"{param:6s}: {angle_deg(rec.direction, t3[0]):.1f} deg")

# %% [markdown]
# ## Comparing networks
# `match` visualizes a feature in network A and recovers the direction of network B for the same image: here A and B
# are Lite0 and Lite0 with the channels of `blocks.4` permuted; the permutation comes back
# (`benchmarks/ifv_match.py` also runs Lite0 against Lite1).

# %%
import copy
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
          reopt_steps=pick(10, 200), points=POINTS)
print("expected unit", int((perm == 7).nonzero()), "matched", m.top_units[:3], "SSIM", round(m.ssim, 3))
