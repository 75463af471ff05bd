"""Concepts (`invviz.concepts`): the planted oracle, held-out figures on EfficientNet-Lite0, and the pass's speed and
memory.

    python benchmarks/concepts.py planted     # nmf / sae / pca on PlantedConcepts, 3 seeds, 2 sizes (~1 min)
    python benchmarks/concepts.py lite0       # Lite0, crops of 8 photos, 2 photos held out; k = 8, 16, 32 (~10 min)
    python benchmarks/concepts.py grid        # the README's picture: Lite0 concepts rendered with their evidence
    python benchmarks/concepts.py speed       # pass throughput and peak memory against the dataset size, 1 and 2
                                              # gloo processes (~5 min)

Planted: `invviz.models.zoo.PlantedConcepts`, whose layer `mix` is sparse non-negative mixtures (1 or 2 of k) of k
known directions; the figure is the median (and minimum) cosine of the planted directions with the learned ones
after Hungarian matching. Lite0: augmented crops (`invviz.data.PhotoCrops`) of the bundled photos at 224 px; the
concepts are learned on crops of `split_photos(2)`'s first photos and `Concepts.evaluate` measures R^2 and dead
concepts on crops of the two held-out photos. Results are merged into `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from _common import RESULTS, save_result, timed  # noqa: E402
from scipy.optimize import linear_sum_assignment

import invviz
from invviz.data import PhotoCrops, split_photos
from invviz.models.zoo import PlantedConcepts


def matched(found: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    cos = (found / found.norm(dim=1, keepdim=True)) @ (truth / truth.norm(dim=1, keepdim=True)).T
    rows, cols = linear_sum_assignment(-cos.numpy())
    return cos[rows, cols]


def planted(args) -> dict:
    rows = []
    for k, channels in ((6, 16), (12, 32)):
        for seed in range(3):
            model = PlantedConcepts(k=k, channels=channels, seed=seed)
            images, _ = model.images(64, seed=seed + 100)
            for method in ("nmf", "sae", "pca"):
                t0 = time.perf_counter()
                c = invviz.concepts(model, "mix", images, k, method=method, positions=None, top_n=2, crop=16,
                                    classes=False, seed=seed, top_k=2)
                cos = matched(c.directions, model.directions)
                rows.append({"k": k, "channels": channels, "seed": seed, "method": method,
                             "median_cosine": float(cos.median()), "min_cosine": float(cos.min()), "r2": c.r2,
                             "dead": c.dead, "seconds": time.perf_counter() - t0})
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for method in ("nmf", "sae", "pca"):
        mine = [r for r in rows if r["method"] == method]
        summary[method] = {"median_of_median_cosines": float(torch.tensor([r["median_cosine"] for r in mine]).median()),
                           "worst_median_cosine": min(r["median_cosine"] for r in mine),
                           "worst_min_cosine": min(r["min_cosine"] for r in mine)}
    return {"rows": rows, "summary": summary}


def lite0(args) -> dict:
    torch.set_num_threads(args.threads)
    model = invviz.load_model("tf_efficientnet_lite0")
    train_names, held_names = split_photos(2)
    train = PhotoCrops(224, names=train_names, length=args.crops, seed=0)
    held = PhotoCrops(224, names=held_names, length=args.crops // 4, seed=1)
    rows = []
    for layer in args.layers.split(","):
        for k in (8, 16, 32):
            for method in ("nmf", "sae", "pca"):
                t0 = time.perf_counter()
                c = invviz.concepts(model, layer, train, k, method=method, held_out=0.0, top_n=1, crop=32,
                                    classes=False, positions=args.positions)
                ev = c.evaluate(model, held, positions=args.positions)
                rows.append({"layer": layer, "k": k, "method": method, "held_out_r2": ev["r2"],
                             "held_out_dead": ev["dead"], "train_r2": c.r2, "train_dead": c.dead,
                             "vectors": c.settings["vectors"], "held_out_vectors": ev["vectors"],
                             "seconds": time.perf_counter() - t0, "phases": c.seconds})
                print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows, "train_photos": train_names, "held_out_photos": held_names, "crops": args.crops,
            "positions": args.positions}


def grid(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.set_num_threads(args.threads)
    model = invviz.load_model("tf_efficientnet_lite0")
    train = PhotoCrops(224, length=args.crops, seed=0)
    c = invviz.concepts(model, args.grid_layer, train, args.grid_k, top_n=4, crop=96, positions=args.positions)
    c.render(model, steps=args.render_steps, size=128)
    top = c.importance.argsort(descending=True)[:args.grid_rows].tolist()
    fig = c.figure(top, n=4)
    path = os.path.join("assets", f"lite0_concepts_{args.grid_layer}.png")
    invviz.io.save_figure(fig, os.path.join(os.path.dirname(os.path.dirname(RESULTS)), path))
    plt.close(fig)
    c.save(os.path.join(RESULTS, f"concepts_lite0_{args.grid_layer}.pt"))
    return {"layer": args.grid_layer, "k": args.grid_k, "rows": top, "r2": c.r2, "dead": c.dead,
            "importance": [float(c.importance[j]) for j in top],
            "classes": {j: c.top_classes(j, 3) for j in top}, "asset": path, "seconds": c.seconds}


_SPEED_CHILD = """
import json, os, resource, sys, time, torch, invviz
from invviz.data import PhotoCrops
from invviz.training import distributed as ddp
n, size, layer = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
model = invviz.load_model("tf_efficientnet_lite0")
data = torch.utils.data.DataLoader(PhotoCrops(size, length=n, seed=0), batch_size=16)
c = invviz.concepts(model, layer, data, 8, size=size, positions=16, max_vectors=4096, top_n=2, crop=32,
                    classes=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peaks = ddp.all_gather_object(peak)
if ddp.is_main():
    print(json.dumps({"images": n, "seconds_pass": c.seconds["activations"], "seconds_evidence": c.seconds["evidence"],
                      "peak_rss_mib": max(peaks), "world": ddp.world_size(), "h_w": None}))
"""


def speed(args) -> dict:
    rows = []
    feats = invviz.models.features(invviz.load_model("tf_efficientnet_lite0"), args.speed_layer,
                                   torch.rand(1, 3, args.speed_size, args.speed_size))[args.speed_layer]
    positions = feats.shape[2] * feats.shape[3]
    for n in (64, 256, 1024):
        for world in (1, 2):
            env = {**os.environ, "THREADS": str(2 // world), "OMP_NUM_THREADS": str(2 // world)}
            cmd = ([sys.executable, "-c", _SPEED_CHILD] if world == 1 else
                   [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
                    "-c", _SPEED_CHILD])
            if world == 2:  # torchrun runs a script, not -c: write the child once
                script = os.path.join(RESULTS, "_concepts_speed_child.py")
                with open(script, "w") as f:
                    f.write(_SPEED_CHILD)
                cmd = cmd[:-2] + [script]
            out = subprocess.run([*cmd, str(n), str(args.speed_size), args.speed_layer], capture_output=True,
                                 text=True, env=env)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["activations_per_second"] = n * positions / row["seconds_pass"]
            row["positions_per_image"] = positions
            rows.append(row)
            print(json.dumps(row), flush=True)
    script = os.path.join(RESULTS, "_concepts_speed_child.py")
    if os.path.exists(script):
        os.remove(script)
    return {"rows": rows, "layer": args.speed_layer, "size": args.speed_size, "max_vectors": 4096,
            "note": "peak RSS of the whole process (model and torch included); 2 processes: 1 thread each"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["planted", "lite0", "grid", "speed"])
    ap.add_argument("--layers", default="blocks.4.2.bn2,bn2")
    ap.add_argument("--crops", type=int, default=256)
    ap.add_argument("--positions", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid-layer", default="blocks.4.2.bn2")
    ap.add_argument("--grid-k", type=int, default=16)
    ap.add_argument("--grid-rows", type=int, default=6)
    ap.add_argument("--render-steps", type=int, default=256)
    ap.add_argument("--speed-layer", default="blocks.4.2.bn2")
    ap.add_argument("--speed-size", type=int, default=128)
    ap.add_argument("--out", default=os.path.join(RESULTS, "concepts.json"))
    args = ap.parse_args()
    took: dict[str, float] = {}
    with timed(took, "seconds"):
        result = {"planted": planted, "lite0": lite0, "grid": grid, "speed": speed}[args.mode](args)
    save_result(args.out, args.mode, {**result, **took})
    print(json.dumps(result.get("summary", {}), indent=1))


if __name__ == "__main__":
    main()
