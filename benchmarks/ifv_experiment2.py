"""Grad-IFV experiment 2 (Reinbold & Westermann 2020, sec. 3.4): the critical space finds planted trivial solutions.

    python benchmarks/ifv_experiment2.py            # ~5 min on 2 CPU cores

A small CNN is trained here on Fashion-MNIST (Debian package `dataset-fashion-mnist`). Its feature layer `fc` has
the 10 class logits and an 11th unit. Two trivial solutions are planted the way the seed found them in trained
networks: the 11th unit is dead (zero weights and bias), and the logit weights are centred over classes
(`1^T W = 0`, `1^T b = 0`: softmax shift invariance, so predictions are unchanged). Both directions are in the
co-kernel of every Jacobian. Algorithm 1 must find them, and IFV restricted to the critical space must recover the
projected targets where unrestricted IFV fails.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from _common import FashionNet  # noqa: E402
from torch import nn

import invviz  # noqa: F401  (first: makes torchvision importable)
from invviz.data import fashion_mnist
from invviz.ifv import (
    IFVObjective,
    angle_deg,
    critical_spaces,
    principal_angles,
    realize,
    recover_objective,
    sample_targets,
)


def train(epochs: int, seed: int) -> tuple[FashionNet, float]:
    torch.manual_seed(seed)
    x, y = fashion_mnist("train")
    xt, yt = fashion_mnist("test")
    net = FashionNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            idx = perm[i:i + 256]
            loss = nn.functional.cross_entropy(net(x[idx])[:, :10], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = float((net(xt)[:, :10].argmax(1) == yt).float().mean())
    return net.eval(), acc


def plant(net: FashionNet) -> torch.Tensor:
    """Plant the two trivial solutions; returns their orthonormal basis `(11, 2)`."""
    with torch.no_grad():
        net.fc.weight[10].zero_()
        net.fc.bias[10].zero_()
        net.fc.weight[:10] -= net.fc.weight[:10].mean(dim=0, keepdim=True)
        net.fc.bias[:10] -= net.fc.bias[:10].mean()
    dead = torch.zeros(11)
    dead[10] = 1.0
    shift = torch.ones(11)
    shift[10] = 0.0
    return torch.stack([dead, shift / shift.norm()], dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--adam", type=int, default=300)
    ap.add_argument("--lbfgs", type=int, default=100)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/ifv_exp2.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    net, acc_before = train(args.epochs, args.seed)
    planted = plant(net)
    xt, yt = fashion_mnist("test")
    with torch.no_grad():
        acc_after = float((net(xt)[:, :10].argmax(1) == yt).float().mean())
    t_train = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(args.seed)
    targets, _ = sample_targets(11, args.samples, canonical=False, rng=gen)
    t0 = time.perf_counter()
    form = IFVObjective(cossim_pow=1.0, aggregation="mean")
    real = realize(net, "fc", targets, form=form, size=28, adam_steps=args.adam, lbfgs_steps=args.lbfgs, seed=args.seed)
    t_real = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = [recover_objective(net, "fc", real.element(i), form=form, points=1) for i in range(len(targets))]
    t_rec = (time.perf_counter() - t0) / len(targets)
    t0 = time.perf_counter()
    spaces = critical_spaces(recs)
    t_search = time.perf_counter() - t0
    listing = [{"eps_low": s.eps_low, "eps_high": s.eps_high, "dim": s.dim} for s in spaces]
    # the space at the requested eps
    chosen = next((s for s in spaces if s.eps_low <= args.eps <= s.eps_high), None)
    if chosen is None:
        chosen = min(spaces, key=lambda s: abs(np.log(s.eps_low) - np.log(args.eps)))
    angles, _, _ = principal_angles(chosen.kernel.double(), planted.double())
    kernel_angle = float(torch.rad2deg(angles.max())) if chosen.kernel.shape[1] >= 2 else 90.0

    free, restricted, response = [], [], []
    proj = torch.eye(11) - planted @ planted.T
    for i, t in enumerate(targets):
        goal = proj @ t
        free.append(angle_deg(recs[i].direction, goal))
        response.append(angle_deg(recs[i].response, goal))
        r = recover_objective(net, "fc", real.element(i), form=form, points=1, critical_space=chosen.basis)
        restricted.append(angle_deg(r.direction, goal))
    summary = {
        "command": "python benchmarks/ifv_experiment2.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "test_accuracy_trained": acc_before, "test_accuracy_planted": acc_after,
        "critical_spaces": listing, "eps": args.eps, "chosen_dim": chosen.dim,
        "largest_angle_kernel_to_planted_deg": kernel_angle,
        "unrestricted_angle_to_projected_target_deg": {"median": float(np.median(free)),
                                                       "p95": float(np.percentile(free, 95))},
        "response_angle_to_projected_target_deg": {"median": float(np.median(response)),
                                                    "p95": float(np.percentile(response, 95))},
        "restricted_angle_to_projected_target_deg": {"median": float(np.median(restricted)),
                                                     "p95": float(np.percentile(restricted, 95))},
        "seconds": {"train": t_train, "realize_per_sample": t_real / len(targets), "recover_per_sample": t_rec,
                    "critical_space_search": t_search},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
