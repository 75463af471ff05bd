"""Grad-IFV experiment 1 (Reinbold & Westermann 2020, sec. 3.1): recover sampled and canonical targets on EfficientNet-Lite0.

    python benchmarks/ifv_experiment1.py                       # 64 sampled + 16 canonical at 128 px (CPU, ~1 h)
    python benchmarks/ifv_experiment1.py --sampled 300 --canonical 0 --size 224   # the seed's setting (GPU)

Stages (each cached under --work so a rerun resumes): realizations (Adam then L-BFGS, batched, one target per
batch element; asking for more L-BFGS steps continues the cached realization with the most steps below) -> IFV
with the plain solver and the multi-point solver -> re-optimization SSIM. Writes a JSON summary, the Fig. 2 scatter
and the Fig. 3 coefficient bars.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from _common import SWEEP_START, SWEEP_STRIDE, stats  # noqa: E402

import invviz  # noqa: F401  (first: makes torchvision importable)
from invviz import load_model
from invviz.ifv import IFVObjective, angle_deg, realize, recover_objective, reoptimize, sample_targets
from invviz.ifv.plots import coefficient_bars, scatter_with_margins


def previous_lbfgs(work: str, size: int, adam: int, lbfgs: int, start: int) -> tuple[int, dict] | None:
    """The cached realization of this batch with the most L-BFGS steps below `lbfgs` (same size and Adam steps)."""
    prefix, suffix = f"realized_{size}_{adam}_", f"_{start}.pt"
    done = [int(name[len(prefix):-len(suffix)]) for name in os.listdir(work)
            if name.startswith(prefix) and name.endswith(suffix) and name[len(prefix):-len(suffix)].isdigit()]
    done = [d for d in done if d < lbfgs]
    if not done:
        return None
    return max(done), torch.load(os.path.join(work, f"{prefix}{max(done)}{suffix}"), weights_only=True)


def cached_steps(cached: dict) -> list[int]:
    """The L-BFGS step counts after which a cached realization was continued (empty when it ran in one go)."""
    return cached["continued_from"].tolist() if "continued_from" in cached else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--layer", default="blocks.4")
    ap.add_argument("--sampled", type=int, default=64)
    ap.add_argument("--canonical", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--adam", type=int, default=800)
    ap.add_argument("--lbfgs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--reopt-stride", type=int, default=1,
                    help="re-optimize every n-th sample only (CPU budget); sampled and canonical alike")
    ap.add_argument("--reopt-under", default="target,plain,multi,response,random",
                    help="comma-separated directions to re-optimize under")
    ap.add_argument("--cossim-pow", type=float, default=1.0)
    ap.add_argument("--points", type=int, default=9)
    ap.add_argument("--radius", type=float, default=0.001)
    ap.add_argument("--offsets", choices=("antithetic", "iid"), default="antithetic",
                    help="multi-point offsets: +/- pairs (recover_objective's default) or independent draws")
    ap.add_argument("--multi-stride", type=int, default=1,
                    help="multi-point IFV on every n-th sample only (CPU budget); compared on that subset")
    ap.add_argument("--reopt", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="benchmarks/results/ifv_exp1")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--summary", default=None, help="where the JSON summary goes (default: WORK/summary.json)")
    ap.add_argument("--no-figures", action="store_true", help="do not write the figures into assets/")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(args.seed)
    model = load_model(args.model).to(args.device)
    form = IFVObjective(cossim_pow=args.cossim_pow, aggregation="maxpool_mean")

    # targets: sampled with uniform Hoyer sparseness, plus evenly spread canonical vectors
    with torch.no_grad():
        from invviz.models import Capture
        with Capture(model, [args.layer]) as cap:
            k = cap.run(torch.zeros(1, 3, args.size, args.size, device=args.device))[args.layer].shape[1]
    gen = torch.Generator().manual_seed(args.seed)
    sampled, _ = sample_targets(k, args.sampled, canonical=False, rng=gen)
    canon = torch.eye(k)[torch.linspace(0, k - 1, args.canonical).round().long()] if args.canonical else sampled[:0]
    targets = torch.cat([sampled, canon])
    kinds = ["sampled"] * len(sampled) + ["canonical"] * len(canon)

    # 1. realizations, cached per batch
    params, grad_adam, grad_end, secs, continued_from = [], [], [], 0.0, set()
    for start in range(0, len(targets), args.batch):
        path = os.path.join(args.work, f"realized_{args.size}_{args.adam}_{args.lbfgs}_{start}.pt")
        if not os.path.exists(path):
            batch_targets = targets[start:start + args.batch]
            fewer = previous_lbfgs(args.work, args.size, args.adam, args.lbfgs, start)
            if fewer is None:
                r = realize(model, args.layer, batch_targets, form=form, size=args.size, adam_steps=args.adam,
                            lbfgs_steps=args.lbfgs, seed=args.seed + start, progress=True)
                grad_after_adam, seconds, continued = r.grad_norm_adam, r.seconds, []
            else:  # continue the cached realization with fewer L-BFGS steps (fresh curvature history)
                done, cached = fewer
                assert torch.equal(cached["targets"], batch_targets)
                p = invviz.optvis.PixelImage(args.size, len(batch_targets)).to(args.device)
                with torch.no_grad():
                    p.pixels.copy_(cached["params"])
                r = realize(model, args.layer, batch_targets, form=form, param=p, adam_steps=0,
                            lbfgs_steps=args.lbfgs - done, progress=True)
                grad_after_adam, seconds = cached["grad_adam"], cached["seconds"] + r.seconds
                continued = cached_steps(cached) + [done]
                print(f"continued {done} -> {args.lbfgs} L-BFGS steps: median gradient norm"
                      f" {float(cached['grad_end'].median()):.3f} -> {float(r.grad_norm.median()):.3f}", flush=True)
            torch.save({"params": r.param.pixels.detach().cpu(), "targets": r.targets, "grad_adam": grad_after_adam,
                        "grad_end": r.grad_norm, "seconds": seconds,
                        "continued_from": torch.tensor(continued, dtype=torch.long)}, path + ".tmp")
            os.replace(path + ".tmp", path)
        cached = torch.load(path, weights_only=True)
        assert torch.equal(cached["targets"], targets[start:start + args.batch])
        params.append(cached["params"])
        grad_adam.append(cached["grad_adam"])
        grad_end.append(cached["grad_end"])
        secs += cached["seconds"]
        continued_from.update(cached_steps(cached))
        print(f"realized {start + len(cached['params'])}/{len(targets)}", flush=True)
    params, grad_adam, grad_end = torch.cat(params), torch.cat(grad_adam), torch.cat(grad_end)

    def element(i: int) -> invviz.optvis.PixelImage:
        p = invviz.optvis.PixelImage(args.size, 1).to(args.device)
        with torch.no_grad():
            p.pixels.copy_(params[i:i + 1])
        return p

    # 2. IFV, plain and multi-point
    multi_key = f"p{args.points}_r{args.radius:g}_{args.offsets}"
    path = os.path.join(args.work, f"recovered_{args.size}_{args.adam}_{args.lbfgs}_{multi_key}_m{args.multi_stride}.pt")
    if os.path.exists(path):
        rec = torch.load(path, weights_only=True)
    else:
        rec = {"plain": [], "multi": [], "response": [], "coeffs": [], "sigma": [], "t_plain": 0.0, "t_multi": 0.0}
        for i in range(len(targets)):
            t0 = time.perf_counter()
            plain = recover_objective(model, args.layer, element(i), form=form, target=targets[i], points=1)
            t1 = time.perf_counter()
            if i % args.multi_stride == 0:
                multi = recover_objective(model, args.layer, element(i), form=form, points=args.points, radius=args.radius,
                                          antithetic=args.offsets == "antithetic", seed=i)
            else:
                multi = plain  # not computed for this sample; excluded from the multi-point statistics
            t2 = time.perf_counter()
            rec["t_plain"] += t1 - t0
            rec["t_multi"] += t2 - t1
            rec["plain"].append(plain.direction)
            rec["multi"].append(multi.direction)
            rec["response"].append(plain.response)
            rec["coeffs"].append(plain.target_coefficients)
            rec["sigma"].append(plain.singular_values)
            print(f"ifv {i + 1}/{len(targets)}: plain {angle_deg(plain.direction, targets[i]):.2f} deg, multi"
                  f" {angle_deg(multi.direction, targets[i]):.2f} deg", flush=True)
        rec = {key: torch.stack(v) if isinstance(v, list) else v for key, v in rec.items()}
        torch.save(rec, path)

    rand = torch.randn(len(targets), k, generator=gen)
    ang = {
        "plain": [angle_deg(rec["plain"][i], targets[i]) for i in range(len(targets))],
        "multi": [angle_deg(rec["multi"][i], targets[i]) for i in range(0, len(targets), args.multi_stride)],
        "plain_on_multi_subset": [angle_deg(rec["plain"][i], targets[i])
                                  for i in range(0, len(targets), args.multi_stride)],
        "response": [angle_deg(rec["response"][i], targets[i]) for i in range(len(targets))],
        "random": [angle_deg(rand[i], targets[i]) for i in range(len(targets))],
    }
    # the multi-point settings were chosen on the realizations SWEEP_START, +SWEEP_STRIDE, ... (ifv_multipoint_sweep.py);
    # the multi-point figure without them (no realization of a multi-stride of 4 is among them)
    untuned = [i for i in range(0, len(targets), args.multi_stride) if i % SWEEP_STRIDE != SWEEP_START]
    ang["multi_outside_sweep"] = [angle_deg(rec["multi"][i], targets[i]) for i in untuned]
    ang["plain_outside_sweep"] = [angle_deg(rec["plain"][i], targets[i]) for i in untuned]

    # 3. re-optimization SSIM under each direction
    under_all = {"target": targets, "plain": rec["plain"], "multi": rec["multi"],  # multi = plain off the subset
             "response": rec["response"] / rec["response"].norm(dim=1, keepdim=True), "random": rand}
    sel = torch.arange(0, len(targets), args.reopt_stride)
    under = {name: under_all[name][sel] for name in args.reopt_under.split(",") if name}
    base = os.path.join(args.work, f"reopt_{args.size}_{args.adam}_{args.lbfgs}_{args.reopt}_s{args.reopt_stride}")
    ssims = {}
    for name, dirs in under.items():  # cached per direction, so an interrupted run keeps what it finished
        one = f"{base}_{multi_key}_{name}.pt" if name == "multi" else f"{base}_{name}.pt"
        if os.path.exists(one):
            ssims[name] = torch.load(one, weights_only=True)
            continue
        vals = []
        for start in range(0, len(sel), args.batch):
            idx = sel[start:start + args.batch]
            batch = invviz.optvis.PixelImage(args.size, len(idx)).to(args.device)
            with torch.no_grad():
                batch.pixels.copy_(params[idx])
            s, _ = reoptimize(model, args.layer, batch, dirs[start:start + len(idx)], form=form, steps=args.reopt)
            vals.append(s)
        ssims[name] = torch.cat(vals)
        torch.save(ssims[name], one)
        print(f"re-optimized under {name}: median SSIM {float(ssims[name].median()):.3f}", flush=True)

    summary = {
        "command": "python benchmarks/ifv_experiment1.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("work", "device", "summary", "no_figures")),
        "model": args.model, "layer": args.layer, "features": k, "samples": len(targets),
        "sampled": len(sampled), "canonical": len(canon), "size": args.size,
        "angle_deg": {name: stats(v) for name, v in ang.items()},
        "angle_deg_canonical": {name: stats([a for a, kd in zip(ang[name], kinds) if kd == "canonical"])
                                for name in ("plain", "response", "random")} if len(canon) else None,
        "multi_point_samples": len(ang["multi"]),
        "ssim_after_reopt": {name: stats(v) for name, v in ssims.items()},
        # per sample, SSIM under a prediction minus SSIM under the true target (the protocol's ceiling)
        "ssim_minus_target": {name: {**stats(v - ssims["target"]), "max_abs": float((v - ssims["target"]).abs().max())}
                              for name, v in ssims.items() if name != "target" and "target" in ssims},
        "ssim_samples": len(sel), "reopt_steps": args.reopt,
        "grad_norm_after_adam": stats(grad_adam), "grad_norm_after_lbfgs": stats(grad_end),
        "seconds_per_realization": secs / len(targets),
        "lbfgs_restarted_after": sorted(continued_from),  # L-BFGS steps after which a cached run was continued
        "seconds_per_recover_plain": rec["t_plain"] / len(targets),
        "seconds_per_recover_multi": rec["t_multi"] / len(ang["multi"]),
        "points": args.points, "radius": args.radius, "offsets": args.offsets,
    }
    with open(args.summary or os.path.join(args.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    if args.no_figures:
        return
    sub = list(range(0, len(targets), args.multi_stride))
    scatter_with_margins(ang["plain"], ang["response"], "prediction (deg)", "feature response (deg)",
                         os.path.join("assets", "ifv_exp1_scatter.png"))
    scatter_with_margins(ang["multi"], [ang["response"][i] for i in sub], "prediction (deg)",
                         "feature response (deg)", os.path.join("assets", "ifv_exp1_scatter_multi.png"),
                         extra=(ang["plain_on_multi_subset"], "plain solver"))
    order = np.argsort(np.asarray(ang["plain"]))[:: max(1, len(targets) // 12)][:12]
    coefficient_bars(rec["coeffs"][order], os.path.join("assets", "ifv_exp1_coefficients.png"))


if __name__ == "__main__":
    main()
