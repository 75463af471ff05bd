"""Why the wrapper's decoder does not leave its start image on the pretrained EfficientNet-Lite0.

    python benchmarks/fa_lite0_diagnosis.py                     # bn2 and blocks.4 at 96 px, ~10 min on 2 cores
    python benchmarks/fa_lite0_diagnosis.py --steps 40 --layers bn2

For each latent, on 8 training crops of the bundled photos (96 px):

1. the fraction of the latent's units that are on at the start image (a flat image of the crops' mean colour) and
   on the crops: an alignment step from the start hears only from the units that are on there;
2. the cosine between the first alignment step's direction and what it should be (the crops' logits minus the
   start's), median over the crops, for plain steps;
3. the step sizes the line search (`calibrate`) sets;
4. can training fit even these 8 crops? `--steps` Adam steps on the same batch, the decoded PSNR against the start
   image's, for the defaults and for the levers tried (a floor on the step size, leaky ReLU gradients while
   decoding, a faster rate for r_0 and the step sizes).

Writes `benchmarks/results/fa_lite0_diagnosis.json` with the exact command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import invviz
from invviz.align import FeatureAligned
from invviz.data import PhotoCrops, split_photos
from invviz.io import write_json
from invviz.metrics import psnr

LEVERS = {
    "defaults": {},
    "floor 0.1 + leak 0.1 + decoder lr 0.01": {"min_step": 0.1, "leak": 0.1, "decoder_lr": 0.01},
}


def first_step_cosine(w: FeatureAligned, x: torch.Tensor) -> float:
    x = x.clamp(0.01, 0.99)
    with w.encoder() as enc, torch.no_grad():
        z = enc(x)
        r0 = w.start(len(x)).detach()
        with torch.enable_grad(), w.decoding():
            r = r0.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(0.5 * ((z - enc(torch.sigmoid(r))) ** 2).sum(), r)
    return statistics.median(F.cosine_similarity(-g.flatten(1), (torch.logit(x) - r0).flatten(1)).tolist())


def fit_batch(model, layer: str, x: torch.Tensor, steps: int, min_step=0.0, leak=0.0, decoder_lr=None) -> dict:
    torch.manual_seed(0)
    w = FeatureAligned(model, layer, size=x.shape[-1], leak=leak)
    with torch.no_grad():
        w.r0.copy_(torch.logit(x.clamp(0.01, 0.99).mean((0, 2, 3), keepdim=True)).expand_as(w.r0))
    w.calibrate(x, min_step=min_step)
    taus = w.taus.tolist()
    network = [p for p in w.model.parameters() if p.requires_grad]
    opt = torch.optim.Adam([{"params": network, "lr": 1e-3},
                            {"params": [w.r0, w.log_tau], "lr": decoder_lr or 1e-3}], betas=(0.5, 0.999))
    w.eval()

    def quality() -> tuple[float, float]:
        with torch.no_grad():
            return (float(psnr(w.decode(w.encode(x)), x).mean()),
                    float(psnr(torch.sigmoid(w.r0).expand_as(x), x).mean()))

    start = quality()
    t0 = time.perf_counter()
    for _ in range(steps):
        out = w.losses(x)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
    end = quality()
    return {"decoded_db_before": start[0], "r0_db_before": start[1], "decoded_db_after": end[0],
            "r0_db_after": end[1], "gain_over_r0_after_db": end[0] - end[1], "taus_calibrated": taus,
            "taus_after": w.taus.tolist(), "seconds": time.perf_counter() - t0, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="bn2,blocks.4")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/results/fa_lite0_diagnosis.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = invviz.load_model("tf_efficientnet_lite0")
    train, _ = split_photos(2)
    crops = PhotoCrops(args.size, names=train, length=8, flip=False, jitter=0)
    x = torch.stack([crops[i] for i in range(8)])
    rows = {}
    for layer in args.layers.split(","):
        w = FeatureAligned(model, layer, size=args.size)
        with torch.no_grad():
            w.r0.copy_(torch.logit(x.clamp(0.01, 0.99).mean((0, 2, 3), keepdim=True)).expand_as(w.r0))
            start = torch.sigmoid(w.r0).expand(1, -1, -1, -1)
            on_start = float((w.encode(start) > 0).float().mean())
            on_data = float((w.encode(x) > 0).float().mean())
        row = {"preserve": w.preserve, "units_on_at_start_image": on_start, "units_on_at_crops": on_data,
               "first_step_cosine_median": first_step_cosine(w, x),
               "first_step_cosine_median_leak_0.1": first_step_cosine(FeatureAligned(model, layer, size=args.size,
                                                                                     leak=0.1), x)}
        for name, lever in LEVERS.items():
            row[name] = fit_batch(model, layer, x, args.steps, **lever)
            print(layer, name, {k: v for k, v in row[name].items() if "db" in k}, flush=True)
        rows[layer] = row
        print(layer, {k: v for k, v in row.items() if not isinstance(v, dict)}, flush=True)
    write_json(args.out, {"command": "python " + " ".join(sys.argv), "size": args.size, "rows": rows})


if __name__ == "__main__":
    main()
