"""Feature alignment on the pretrained EfficientNet-Lite0: the wrapper on crops of the bundled photos.

    python benchmarks/fa_wrapper_lite0.py --layer blocks.4 --run spatial          # one row (~20 min on 2 cores)
    python benchmarks/fa_wrapper_lite0.py --layer global_pool --run pooled
    python benchmarks/fa_wrapper_lite0.py --layer blocks.4 --baselines-only

`FeatureAligned(lite0, layer)` is fine-tuned with `train_aligned` on random crops (96 px) of 8 of the bundled photos;
the 2 photos never trained on give the held-out crops. Reported on 64 held-out crops: PSNR/SSIM of
`invviz.invert(wrapped, crops)`; the PSNR of the start image `r_0` after training (what the decoder starts from, a
learned mean-like image) and before (grey); top-1 agreement of the wrapped model with the original.

Reference decoders on the same crops: a grey image, the mean training crop, the best linear decoder of the
*original* model's pooled features and of the original latent at `layer` (ridge regression to pixels fitted on the
training crops, strength picked on the held-out crops themselves, so optimistic), and each crop's own mean colour
(an oracle: it reads the held-out image). Rows are merged into `--out` under `--run`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import torch

import invviz
from invviz.align import FeatureAligned, train_aligned
from invviz.data import photo_crops, photo_paths
from invviz.io import write_json
from invviz.metrics import psnr
from invviz.models import Probe
from invviz.training import TrainSchedule


@torch.no_grad()
def ridge(model, layer: str, train: torch.Tensor, held: torch.Tensor) -> float:
    probe = Probe(model, [layer])
    with probe:
        def feats(x):
            return torch.cat([probe.latent(x[i:i + 128]) for i in range(0, len(x), 128)]).double()
        f_train, f_held = feats(train), feats(held)
    x_train = train.flatten(1).double()
    mu_f, mu_x = f_train.mean(0), x_train.mean(0)
    a, b = f_train - mu_f, x_train - mu_x
    gram, cross = a.T @ a, a.T @ b
    best = -1e9
    for lam in (0.01, 0.1, 1.0, 10.0, 100.0):
        w = torch.linalg.solve(gram + lam * len(a) * torch.eye(a.shape[1], dtype=a.dtype), cross)
        pred = ((f_held - mu_f) @ w + mu_x).clamp(0, 1).float().view_as(held)
        best = max(best, float(psnr(pred, held).mean()))
    return best


def baselines(model, layer: str, train: torch.Tensor, held: torch.Tensor) -> dict:
    out = {"grey_db": float(psnr(torch.full_like(held, 0.5), held).mean()),
           "mean_training_crop_db": float(psnr(train.mean(0, keepdim=True).expand_as(held), held).mean()),
           "own_mean_colour_oracle_db": float(psnr(held.mean((2, 3), keepdim=True).expand_as(held), held).mean()),
           "linear_decoder_of_original_pooled_db": ridge(model, "global_pool", train, held)}
    if layer != "global_pool":
        out[f"linear_decoder_of_original_{layer}_db"] = ridge(model, layer, train, held)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", default="blocks.4")
    ap.add_argument("--run", default=None)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--align-steps", type=int, default=2)
    ap.add_argument("--preserve", default="auto", choices=["auto", "projection", "distill"])
    ap.add_argument("--trainable", default="encoder", choices=["encoder", "all", "lora"])
    ap.add_argument("--distill", type=float, default=1.0)
    ap.add_argument("--feature", type=float, default=0.0)
    ap.add_argument("--anchor", type=float, default=0.0)
    ap.add_argument("--leak", type=float, default=0.0, help="gradient ReLUs pass where off, while decoding")
    ap.add_argument("--min-step", type=float, default=0.0, help="calibrate()'s floor on the step sizes")
    ap.add_argument("--decoder-lr", type=float, default=None, help="learning rate of r_0 and the step sizes")
    ap.add_argument("--baselines-only", action="store_true")
    ap.add_argument("--work", default="benchmarks/results/fa_wrapper")
    ap.add_argument("--out", default="benchmarks/results/fa_wrapper_lite0_v2.json")
    ap.add_argument("--figure", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    names = sorted(photo_paths())
    train_names, held_names = names[:-2], names[-2:]
    train = photo_crops(2048, args.size, names=train_names, seed=0)
    held = photo_crops(64, args.size, names=held_names, seed=1)
    model = invviz.load_model("tf_efficientnet_lite0")
    summary = json.load(open(args.out)) if os.path.exists(args.out) else {}
    key = f"baselines {args.layer} {args.size}px"
    if args.baselines_only or key not in summary:
        summary[key] = baselines(model, args.layer, train, held)
        write_json(args.out, summary)
        print(json.dumps(summary[key], indent=1))
        if args.baselines_only:
            return
    torch.manual_seed(0)
    wrapper = FeatureAligned(model, args.layer, steps=args.align_steps, size=args.size, preserve=args.preserve,
                             trainable=args.trainable, leak=args.leak)
    if args.min_step:
        wrapper.calibrate = functools.partial(type(wrapper).calibrate, wrapper, min_step=args.min_step)
    r0_before = float(psnr(torch.sigmoid(wrapper.r0.detach()).expand_as(held), held).mean())
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True, generator=torch.Generator())
    run = args.run or (f"{args.layer} {wrapper.preserve} {args.trainable} lr {args.lr:g} T {args.align_steps}"
                       f" distill {args.distill:g} feature {args.feature:g} anchor {args.anchor:g} {args.steps} steps")
    os.makedirs(args.work, exist_ok=True)
    t0 = time.perf_counter()
    hist = train_aligned(wrapper, loader, schedule=TrainSchedule(max_steps=args.steps, checkpoint_every=50),
                         lr=args.lr, decoder_lr=args.decoder_lr,
                         distill_weight=args.distill,
                         feature_weight=args.feature, anchor_weight=args.anchor,
                         checkpoint=os.path.join(args.work, run.replace(" ", "_") + ".pt"))
    seconds = time.perf_counter() - t0
    after = invviz.invert(wrapper, held)
    with torch.no_grad():
        probe = Probe(model, [""])
        orig = model(probe.model_input(held)).argmax(1)
        tuned = wrapper(held).argmax(1)
    r0_after = float(psnr(torch.sigmoid(wrapper.r0.detach()).expand_as(held), held).mean())
    summary[run] = {
        "command": "python benchmarks/fa_wrapper_lite0.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("out", "work", "figure", "baselines_only") and v is not None and v is not False),
        "layer": args.layer, "preserve": wrapper.preserve, "held_out_photos": held_names, "held_out_crops": len(held),
        "psnr_db": float(after.psnr.mean()), "ssim": float(after.ssim.mean()),
        "psnr_r0_after_db": r0_after, "psnr_r0_before_db": r0_before,
        "gain_over_r0_db": float(after.psnr.mean()) - r0_after,
        "top1_agreement_with_original": float((orig == tuned).float().mean()),
        "steps": len(hist), "train_seconds": seconds, "taus": wrapper.taus.tolist(),
        "last_losses": hist[-1] if hist else {},
    }
    write_json(args.out, summary)
    print(json.dumps(summary[run], indent=1))
    if args.figure:
        from invviz.plotting import save_grid

        save_grid(torch.cat([held[:8], after.images[:8]]), args.figure, nrow=8)


if __name__ == "__main__":
    main()
