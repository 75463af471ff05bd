"""Grad-IFV speed: the Jacobian of 192 features at 224 px on EfficientNet-Lite0 (`blocks.5`), batched VJPs
(`torch.func.vjp` + `vmap`, in chunks) against one backward per feature, in one run; each variant in its own
subprocess so its peak resident memory is its own; and a replicated-forward variant (copies of the input through one
batched forward and backward) that was tried and not adopted. Also seconds per sample of `recover_objective` and of the
critical-space search.

    python benchmarks/bench_jacobian.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

import invviz  # noqa: F401


def replicated_jacobian(fn, xi: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The alternative to vmapped VJPs that was tried and not adopted: `chunk` copies of the free variables through
    one batched forward (the pixel parameterization maps a batch of them to a batch of images) and one backward
    with the rows of the identity as cotangents, so every convolution runs at batch `chunk` natively."""
    with torch.no_grad():
        v = fn(xi.detach()).reshape(-1)
    k, rows = v.numel(), []
    for start in range(0, k, chunk):
        b = min(chunk, k - start)
        copies = xi.detach().expand(b, *xi.shape[1:]).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(copies).reshape(b, k), copies, torch.eye(k)[start:start + b])
        rows.append(g.reshape(b, -1))
    return v, torch.cat(rows)


def run_variant(variant: str, chunk: int, size: int) -> dict:
    from invviz import load_model
    from invviz.ifv import jacobian, pixel_realization, response_fn
    from invviz.models import Probe

    model = load_model("tf_efficientnet_lite0")
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    param = pixel_realization(image)
    (name, xi), = param.named_parameters()
    with Probe(model, ["blocks.5"]) as probe, torch.no_grad():
        response = response_fn(probe, "blocks.5")

        def fn(t):
            return response(torch.func.functional_call(param, {name: t}, ()))

        fn(xi.detach())  # probe run of the capture
        t0 = time.perf_counter()
        with torch.enable_grad():
            if variant == "replicated":
                v, jac = replicated_jacobian(fn, xi, chunk)
            else:
                # the library's two paths: vmapped VJPs in chunks, and one VJP per feature through the retained graph
                v, jac = jacobian(fn, xi, chunk=max(chunk, 1), method="vmap" if variant == "batched" else "loop")
        seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "chunk": chunk, "seconds": seconds, "peak_rss_mb": peak_mb, "features": v.numel(),
            "checksum": float(jac.double().abs().sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--chunks", default="16,64")
    ap.add_argument("--replicated-chunks", default="16",
                    help="chunks for the replicated-forward variant (tried, not in the library); empty: skip it")
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="benchmarks/results/bench_jacobian.json")
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.chunk, args.size)))
        return
    runs: dict[str, list[dict]] = {}
    configs = ([("per_feature", 0)] + [("batched", int(c)) for c in args.chunks.split(",")]
               + [("replicated", int(c)) for c in args.replicated_chunks.split(",") if c])
    for _ in range(args.repeats):
        for variant, chunk in configs:  # interleaved, so drift hits every variant alike
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--chunk", str(chunk), "--size",
                                  str(args.size)], capture_output=True, text=True, check=True)
            runs.setdefault(f"{variant}_{chunk}", []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {"command": f"python benchmarks/bench_jacobian.py --repeats {args.repeats} --size {args.size} --chunks"
                          f" {args.chunks} --replicated-chunks {args.replicated_chunks}",
               "threads": torch.get_num_threads()}
    base = statistics.median(r["seconds"] for r in runs["per_feature_0"])
    for key, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        summary[key] = {"median_seconds": med, "speedup_vs_per_feature": base / med,
                        "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in rs),
                        "checksum": rs[0]["checksum"]}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
