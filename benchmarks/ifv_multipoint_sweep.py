"""Choosing the multi-point Grad-IFV settings on held-out realizations of experiment 1 (Reinbold & Westermann 2020 sec. 3.1).

    python benchmarks/ifv_multipoint_sweep.py          # after benchmarks/ifv_experiment1.py has cached its realizations

Experiment 1 reports the multi-point solver on every 4th realization (indices 0, 4, 8, ...). This sweep runs on
realizations none of those use (by default indices 2, 10, 18, ...: every 8th from 2), so the settings it picks are
not tuned on the reported samples. Per realization and per (offset scheme, radius) it takes the Jacobian at the
realization and at up to max(--points) - 1 offset points, and scores, for each prefix of --points points:

- `mean`: the solver `recover_objective(points=P)` uses: the eigenvector of the smallest eigenvalue of `A A^T`,
  `A` the mean of the points' `M_i J_i`;
- `hull`: at a non-smooth optimum zero lies in the convex hull of the nearby gradients `J_i^T M_i theta`, not
  necessarily at their mean, so alternate between theta (smallest eigenvector of `A A^T`, `A = sum_i w_i M_i J_i`)
  and the weights w on the simplex minimizing `|sum_i w_i J_i^T M_i theta|` (projected gradient), from uniform w.

Offset schemes: `iid` (independent Gaussian offsets) and `antithetic` (offsets in +/- pairs, which cancel the
first-order term of the Jacobian's smooth variation; `recover_objective`'s default since this sweep). Writes the
median / p95 angle to the target of every cell.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from _common import SWEEP_START, SWEEP_STRIDE, stats  # noqa: E402

import invviz  # noqa: F401  (first: makes torchvision importable)
from invviz import load_model
from invviz.ifv import angle_deg
from invviz.ifv.jacobian import free_variables, response_fn
from invviz.ifv.recover import point_jacobians, solve
from invviz.models import Probe
from invviz.optvis import PixelImage


def project_simplex(w: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the probability simplex (sort-based)."""
    u, _ = torch.sort(w, descending=True)
    css = u.cumsum(0) - 1
    idx = torch.arange(1, w.numel() + 1, dtype=w.dtype)
    rho = int((u - css / idx > 0).nonzero().max())
    return (w - css[rho] / (rho + 1)).clamp(min=0)


def hull_solve(mjs: torch.Tensor, iters: int = 30, inner: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """theta and simplex weights minimizing `|sum_i w_i J_i^T M_i theta|`, alternating from uniform weights."""
    p = mjs.shape[0]
    w = torch.full((p,), 1.0 / p, dtype=torch.float64)
    theta = None
    for _ in range(iters):
        a = torch.einsum("p,pkn->kn", w, mjs)
        theta = torch.linalg.eigh(a @ a.T)[1][:, 0]
        g = torch.einsum("pkn,k->pn", mjs, theta)  # each point's gradient direction for this theta
        q = g @ g.T
        step = 1.0 / (2 * float(torch.linalg.eigvalsh(q)[-1]) + 1e-30)
        for _ in range(inner):
            w = project_simplex(w - step * 2 * (q @ w))
    return theta, w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--layer", default="blocks.4")
    ap.add_argument("--work", default="benchmarks/results/ifv_exp1")
    ap.add_argument("--realizations", default="realized_128_800_100", help="cache prefix of the realizations")
    ap.add_argument("--start", type=int, default=SWEEP_START)
    ap.add_argument("--stride", type=int, default=SWEEP_STRIDE)
    ap.add_argument("--points", default="9,25", help="comma-separated prefix sizes (the realization counts as one)")
    ap.add_argument("--radii", default="0.001", help="comma-separated offset standard deviations (logit units)")
    ap.add_argument("--schemes", default="iid,antithetic")
    ap.add_argument("--solvers", default="mean,hull")
    ap.add_argument("--cossim-pow", type=float, default=1.0)
    ap.add_argument("--out", default="benchmarks/results/ifv_multipoint_sweep.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    points = sorted(int(p) for p in args.points.split(","))
    radii = [float(r) for r in args.radii.split(",")]
    schemes, solvers = args.schemes.split(","), args.solvers.split(",")

    files = sorted((f for f in os.listdir(args.work) if f.startswith(args.realizations + "_") and f.endswith(".pt")),
                   key=lambda f: int(f[len(args.realizations) + 1:-3]))
    cached = [torch.load(os.path.join(args.work, f), weights_only=True) for f in files]
    params = torch.cat([c["params"] for c in cached])
    targets = torch.cat([c["targets"] for c in cached])
    index = list(range(args.start, len(targets), args.stride))
    model = load_model(args.model)

    angles: dict[str, list[float]] = {"plain": []}
    t0 = time.perf_counter()
    for n, i in enumerate(index):
        param = PixelImage(params.shape[-1], 1)
        with torch.no_grad():
            param.pixels.copy_(params[i:i + 1])
        name, xi = free_variables(param)
        with Probe(model, [args.layer]) as probe:
            response = response_fn(probe, args.layer)

            def fn(t: torch.Tensor) -> torch.Tensor:
                return response(torch.func.functional_call(param, {name: t}, ()))  # noqa: B023 - called within this iteration

            def terms(radius: float, scheme: str, center: bool, seed: int, xi=xi):  # the library's multi-point Jacobian
                return point_jacobians(fn, xi, points=max(points), radius=radius, cossim_pow=args.cossim_pow,
                                       antithetic=scheme == "antithetic", seed=seed, center=center)

            v0, _, center = next(terms(0.0, "iid", True, 0))
            center = center.float()
            plain = solve(center, v0, 0.0).direction
            angles["plain"].append(angle_deg(plain, targets[i]))
            for scheme in schemes:
                for radius in radii:
                    rest = [mj.float() for _, _, mj in terms(radius, scheme, False, 1000 + i)]
                    stacked = torch.stack([center] + rest).double()
                    for pts in points:
                        for solver in solvers:
                            key = f"{solver} {scheme} r={radius:g} P={pts}"
                            if solver == "mean":
                                theta = solve(stacked[:pts].mean(0), v0, 0.0).direction
                            else:
                                theta, _ = hull_solve(stacked[:pts])
                                if float(theta @ v0.double()) < 0:
                                    theta = -theta
                            angles.setdefault(key, []).append(angle_deg(theta, targets[i]))
        print(f"{n + 1}/{len(index)} (realization {i}, {time.perf_counter() - t0:.0f} s): "
              + ", ".join(f"{k} {v[-1]:.2f}" for k, v in angles.items()), flush=True)

    summary = {
        "command": "python benchmarks/ifv_multipoint_sweep.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("work", "out")),
        "realizations": index, "seconds": time.perf_counter() - t0,
        "angle_deg": {k: stats(v) for k, v in angles.items()},
        "per_realization": angles,
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    for k, v in summary["angle_deg"].items():
        print(f"{k:40s} median {v['median']:.2f}  p95 {v['p95']:.2f}")


if __name__ == "__main__":
    main()
