"""Optimization-based inversion (Mahendran & Vedaldi 2015) on the pretrained EfficientNet-Lite0: settings chosen on
some bundled photos, then every layer reported on the others.

    python benchmarks/invert_lite0.py sweep      # settings at blocks.2 and blocks.4 on the tuning photos (~15 min)
    python benchmarks/invert_lite0.py layers     # blocks.1 ... blocks.6 and the pooled features, held-out photos

The photos are the ones shipped with matplotlib, scikit-image and scikit-learn, centre-cropped to 128 px; the first
four (sorted by name) tune the settings (`sweep`), the rest are held out (`layers`). PSNR/SSIM are against the photo;
baselines on the same photos: a grey image, and each photo's own mean colour (an oracle that reads the photo).
Results are merged into `--out`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import torch

import invviz
from invviz.data import load_photo, photo_paths
from invviz.io import write_json
from invviz.metrics import psnr
from invviz.optvis import Translate

LAYERS = ["blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "global_pool"]


def photos(size: int) -> tuple[list[str], torch.Tensor, list[str], torch.Tensor]:
    names = sorted(photo_paths())
    tune, held = names[:4], names[4:]
    return tune, torch.stack([load_photo(n, size) for n in tune]), held, torch.stack([load_photo(n, size) for n in held])


def baselines(x: torch.Tensor) -> dict:
    return {"grey_db": float(psnr(torch.full_like(x, 0.5), x).mean()),
            "mean_colour_db": float(psnr(x.mean((2, 3), keepdim=True).expand_as(x), x).mean())}


def run(model, x, layer, param, lr, jitter, tv, steps, seed=0) -> dict:
    t0 = time.perf_counter()
    rec = invviz.invert(model, x, layer=layer, param=param, lr=lr, tv_weight=tv, steps=steps, seed=seed,
                        transforms=[Translate(jitter)] if jitter else "none")
    return {"psnr_db": float(rec.psnr.mean()), "ssim": float(rec.ssim.mean()), "seconds": time.perf_counter() - t0,
            "per_photo_db": [round(float(v), 2) for v in rec.psnr]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["sweep", "layers"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--sweep-layers", default="blocks.2,blocks.4")
    ap.add_argument("--params", default="pixel,fft")
    ap.add_argument("--lrs", default="0.05,0.1,0.2")
    ap.add_argument("--jitters", default="0,2")
    ap.add_argument("--tvs", default="0,0.05")
    ap.add_argument("--steps", default="300")
    ap.add_argument("--out", default="benchmarks/results/invert_lite0.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = invviz.load_model("tf_efficientnet_lite0")
    tune_names, tune, held_names, held = photos(args.size)
    summary = json.load(open(args.out)) if os.path.exists(args.out) else {}
    if args.mode == "sweep":
        rows = summary.setdefault("sweep", {})
        summary["sweep_photos"] = tune_names
        summary["sweep_baselines"] = baselines(tune)
        grid = itertools.product(args.sweep_layers.split(","), args.params.split(","),
                                 [float(v) for v in args.lrs.split(",")], [int(v) for v in args.jitters.split(",")],
                                 [float(v) for v in args.tvs.split(",")], [int(v) for v in args.steps.split(",")])
        for layer, param, lr, jitter, tv, steps in grid:
            key = f"{layer} {param} lr {lr:g} jitter {jitter} tv {tv:g} steps {steps}"
            if key in rows:
                continue
            rows[key] = run(model, tune, layer, param, lr, jitter, tv, steps)
            print(key, json.dumps(rows[key]), flush=True)
            write_json(args.out, summary)
        return
    from invviz.settings import INVERT_JITTER, INVERT_LR, INVERT_PARAM, INVERT_STEPS, INVERT_TV

    rows = {}
    for layer in LAYERS:
        rows[layer] = run(model, held, layer, INVERT_PARAM, INVERT_LR, INVERT_JITTER, INVERT_TV, INVERT_STEPS)
        print(layer, json.dumps(rows[layer]), flush=True)
    default = invviz.invert(model, held)  # the default layer, as a user calls it
    summary["layers"] = {"photos": held_names, "baselines": baselines(held), "rows": rows,
                         "defaults": {"param": INVERT_PARAM, "lr": INVERT_LR, "jitter": INVERT_JITTER,
                                      "tv_weight": INVERT_TV, "steps": INVERT_STEPS},
                         "default_call": {"layer": default.layer, "psnr_db": float(default.psnr.mean()),
                                          "ssim": float(default.ssim.mean())},
                         "command": "python benchmarks/invert_lite0.py layers"}
    write_json(args.out, summary)
    from invviz.plotting import save_grid

    save_grid(torch.cat([held, default.images]), "assets/invert_lite0.png", nrow=len(held))
    print(json.dumps(summary["layers"], indent=1))


if __name__ == "__main__":
    main()
