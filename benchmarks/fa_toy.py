"""Feature alignment, experiment 1: the toy of Farias & Maziero 2023 sec. 3.2 (Fig. 2).

    python benchmarks/fa_toy.py          # ~2 min on 2 CPU cores

An MLP (two hidden layers of 1024) approximates y = sin(3 pi x) on [0, 1] and has one extra latent neuron l.
Recovery: one step from r = 0 on L = |l_x - l_r|^2 + alpha |f_x - f_r|^2 (alpha = 0.01).
- with FA: trained on |y - f_x|^2 + |x - r_hat|^2 (the graph of the recovery step kept);
- without FA: trained on |y - f_x|^2 only, then recovered the same way, and also by 500 gradient steps on L
  (an optimization-based inversion, the best it can do).
Reports the fraction of a dense grid (2001 points) with error > 0.1 and the max error.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

import invviz  # noqa: F401
from invviz.align import ToyNet, toy_recover


def train(fa: bool, steps: int, seed: int) -> ToyNet:
    torch.manual_seed(seed)
    net = ToyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        x = torch.rand(256, 1)
        y = torch.sin(3 * torch.pi * x)
        loss = ((net(x)[:, :1] - y) ** 2).mean()
        if fa:
            loss = loss + ((x - toy_recover(net, x, create_graph=True)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/fa_toy.json")
    ap.add_argument("--figure", default="assets/fa_toy.png")
    args = ap.parse_args()
    grid = torch.linspace(0, 1, 2001)[:, None]
    results, curves = {}, {}
    for fa in (True, False):
        net = train(fa, args.steps, args.seed)
        rec = toy_recover(net, grid).detach()
        err = (rec - grid).abs()[:, 0]
        name = "fa" if fa else "no_fa"
        fit_err = float((net(grid).detach()[:, 0] - torch.sin(3 * torch.pi * grid[:, 0])).abs().max())
        results[name] = {"max_error": float(err.max()), "fraction_error_gt_0.1": float((err > 0.1).float().mean()),
                         "function_fit_max_error": fit_err}
        curves[name] = rec[:, 0]
        if not fa:
            many = toy_recover(net, grid, steps=500, tau=0.5).detach()
            e = (many - grid).abs()[:, 0]
            results["no_fa_500_steps"] = {"max_error": float(e.max()),
                                          "fraction_error_gt_0.1": float((e > 0.1).float().mean())}
            curves["no_fa_500_steps"] = many[:, 0]
    results["command"] = f"python benchmarks/fa_toy.py --steps {args.steps} --seed {args.seed}"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(grid[:, 0], grid[:, 0], "k--", lw=0.8, label="x")
    for name, c in curves.items():
        ax.plot(grid[:, 0], c, lw=1, label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("recovered x")
    ax.set_ylim(-0.2, 1.2)
    ax.legend(fontsize=7)
    fig.savefig(args.figure, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
