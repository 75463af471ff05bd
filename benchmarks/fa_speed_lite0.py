"""The wrapper's speed on the pretrained EfficientNet-Lite0: its last spatial stage (`bn2`, 1280 x 3 x 3 at 96 px,
kept exactly by the projection) against its pooled features (`global_pool`), side by side in one run.

    python benchmarks/fa_speed_lite0.py                     # 96 px, batch 8, 6 steps each
    python benchmarks/fa_speed_lite0.py --size 224 --batch 4

For each latent: building `FeatureAligned` (the head's map and its pseudo-inverse), the line search of the first
batch (`calibrate`), the first training step after it, and the median of the following steps. Writes
`benchmarks/results/fa_speed_lite0.json` with the exact command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import invviz
from invviz.align import FeatureAligned
from invviz.data import PhotoCrops, split_photos
from invviz.io import write_json


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/fa_speed_lite0.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = invviz.load_model("tf_efficientnet_lite0")
    train, _ = split_photos(2)
    images = torch.stack([PhotoCrops(args.size, names=train, length=args.batch)[i] for i in range(args.batch)])
    rows = {}
    for layer in ("bn2", "global_pool"):
        wrapper, build = timed(lambda layer=layer: FeatureAligned(model, layer, size=args.size))
        _, calibrate = timed(lambda w=wrapper: w.calibrate(images))
        opt = torch.optim.Adam([p for p in wrapper.parameters() if p.requires_grad], lr=1e-3, betas=(0.5, 0.999))

        def step(w=wrapper, o=opt):
            out = w.losses(images)
            o.zero_grad(set_to_none=True)
            out["loss"].backward()
            o.step()

        wrapper.eval()
        steps = [timed(step)[1] for _ in range(args.steps)]
        rows[layer] = {"preserve": wrapper.preserve, "latent_values": int(wrapper.encode(images[:1]).shape[1]),
                       "build_s": build, "calibrate_s": calibrate, "first_step_s": steps[0],
                       "median_step_s": statistics.median(steps[1:]), "steps_s": steps}
        print(layer, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in rows[layer].items()
                      if k != "steps_s"}, flush=True)
    ratio = rows["bn2"]["median_step_s"] / rows["global_pool"]["median_step_s"]
    summary = {"command": "python " + " ".join(sys.argv), "size": args.size, "batch": args.batch,
               "threads": args.threads, "rows": rows, "step_ratio_bn2_over_pooled": ratio}
    write_json(args.out, summary)
    print(f"step ratio bn2 / global_pool: {ratio:.2f}")


if __name__ == "__main__":
    main()
