"""Feature alignment on an ordinary pretrained classifier: the wrapper that keeps the network.

    python benchmarks/fashion_classifier.py                          # the classifier first (92% test accuracy)
    python benchmarks/fa_wrapper_fashion.py --layer layer3 --run spatial      # one row of the table
    python benchmarks/fa_wrapper_fashion.py --layer global_pool --run pooled
    python benchmarks/fa_wrapper_fashion.py --layer layer3 --baselines-only   # reference decoders only

The classifier (`invviz.models.zoo.FashionResNet`, trained the ordinary way by `fashion_classifier.py`) is wrapped with
`FeatureAligned` at a latent (`layer3`, its last spatial stage, 128 x 7 x 7; or `global_pool`, the pooled 128-d
features) and fine-tuned on the Fashion-MNIST training set with `train_aligned`; the levers (how predictions are
kept, what trains, learning rate, alignment steps T, loss weights) are options. On 1000 held-out test images:
reconstruction PSNR/SSIM of `invviz.invert(wrapped, images)`; on the whole test set: accuracy of the wrapped model
against the original's, and top-1 agreement with the original.

Reference decoders on the same 1000 images (`--baselines-only` computes them alone): a grey image, the mean training
image, the best linear decoder of the *original* latent (ridge regression to pixels fitted on 20000 training images,
strength picked on 1000 other training images), optimization-based inversion of the original at that latent
(`invviz.invert` with its defaults), and as an upper bound a decoder network trained on the frozen original latent.
Rows are merged into `--out` under `--run`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

import invviz
from invviz.align import FeatureAligned, train_aligned
from invviz.data import fashion_mnist
from invviz.io import write_json
from invviz.metrics import psnr, ssim
from invviz.models import Probe, load_checkpoint
from invviz.models.zoo import FashionResNet
from invviz.training import TrainSchedule


def classifier(path: str) -> nn.Module:
    if not os.path.exists(path):
        raise SystemExit(f"no classifier at {path}; run python benchmarks/fashion_classifier.py first")
    net = FashionResNet(width=32)
    load_checkpoint(net, path)
    return net.eval()


@torch.no_grad()
def predictions(fn, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(images[i:i + 1000]).argmax(1) for i in range(0, len(images), 1000)])


@torch.no_grad()
def latents(net: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    probe = Probe(net, [layer])
    with probe:
        return torch.cat([probe.latent(images[i:i + 1000]) for i in range(0, len(images), 1000)]).double()


def ridge_decoder(net, layer, train, val, held) -> dict:
    """The best linear decoder of the original latent (strength chosen on `val`)."""
    ft, fv, fh = latents(net, layer, train), latents(net, layer, val), latents(net, layer, held)
    mu_f, mu_x = ft.mean(0), train.flatten(1).double().mean(0)
    a, b = ft - mu_f, train.flatten(1).double() - mu_x
    gram, cross = a.T @ a, a.T @ b
    best = None
    for lam in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        w = torch.linalg.solve(gram + lam * len(a) * torch.eye(a.shape[1], dtype=a.dtype), cross)
        val_db = float(psnr(((fv - mu_f) @ w + mu_x).clamp(0, 1).float().view_as(val), val).mean())
        if best is None or val_db > best[0]:
            best = (val_db, lam, w)
    _, lam, w = best
    pred = ((fh - mu_f) @ w + mu_x).clamp(0, 1).float().view_as(held)
    return {"psnr_db": float(psnr(pred, held).mean()), "ssim": float(ssim(pred, held).mean()), "ridge": lam}


class LatentDecoder(nn.Module):
    """The upper bound: a decoder network from the frozen latent (two linear layers, then up-convolutions)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(d, 1024), nn.ReLU(), nn.Linear(1024, 64 * 7 * 7), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 16, 4, 2, 1),
                                nn.ReLU(), nn.Conv2d(16, 1, 3, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.fc(z).view(-1, 64, 7, 7)))


def decoder_upper_bound(net, layer, train, held, epochs: int = 3) -> dict:
    z_train, z_held = latents(net, layer, train).float(), latents(net, layer, held).float()
    scale = z_train.std().clamp(min=1e-6)
    torch.manual_seed(0)
    dec = LatentDecoder(z_train.shape[1])
    opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(z_train / scale, train), batch_size=128,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(epochs):
        for z, x in loader:
            loss = F.mse_loss(dec(z), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = dec(z_held / scale)
    return {"psnr_db": float(psnr(pred, held).mean()), "ssim": float(ssim(pred, held).mean()), "epochs": epochs}


def baselines(net, layer, x_train, held) -> dict:
    t0 = time.perf_counter()
    out = {"grey_db": float(psnr(torch.full_like(held, 0.5), held).mean()),
           "mean_training_image_db": float(psnr(x_train[:20000].mean(0, keepdim=True).expand_as(held), held).mean()),
           "linear_decoder_of_original": ridge_decoder(net, layer, x_train[:20000], x_train[20000:21000], held)}
    rec = invviz.invert(net, held, layer=layer)
    out["optimization_inversion_of_original"] = {"psnr_db": float(rec.psnr.mean()), "ssim": float(rec.ssim.mean()),
                                                 "steps": 300}
    out["decoder_network_on_original_latent"] = decoder_upper_bound(net, layer, x_train, held)
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", default="benchmarks/results/fashion_classifier.pt")
    ap.add_argument("--layer", default="layer3")
    ap.add_argument("--run", default=None, help="row name in --out (default: derived from the options)")
    ap.add_argument("--epochs", type=float, default=1.0, help="fine-tuning epochs (fractions allowed)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--align-steps", type=int, default=2)
    ap.add_argument("--preserve", default="auto", choices=["auto", "projection", "distill"])
    ap.add_argument("--trainable", default="encoder", choices=["encoder", "all", "lora"])
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--distill", type=float, default=1.0)
    ap.add_argument("--feature", type=float, default=0.0)
    ap.add_argument("--anchor", type=float, default=0.0)
    ap.add_argument("--init", default="zeros")
    ap.add_argument("--no-learn-r0", action="store_true")
    ap.add_argument("--no-learn-tau", action="store_true")
    ap.add_argument("--held", type=int, default=1000)
    ap.add_argument("--baselines-only", action="store_true")
    ap.add_argument("--work", default="benchmarks/results/fa_fashion_wrapper")
    ap.add_argument("--out", default="benchmarks/results/fa_wrapper_fashion.json")
    ap.add_argument("--figure", default=None, help="PNG of 16 held-out images and their decodings")
    args = ap.parse_args()
    torch.set_num_threads(2)
    net = classifier(args.classifier)
    x_train, y_train = fashion_mnist("train")
    x_test, y_test = fashion_mnist("test")
    held = x_test[:args.held]
    summary = json.load(open(args.out)) if os.path.exists(args.out) else {}
    key = f"baselines {args.layer}"
    if args.baselines_only or key not in summary:
        summary[key] = baselines(net, args.layer, x_train, held)
        write_json(args.out, summary)
        print(json.dumps(summary[key], indent=1))
        if args.baselines_only:
            return
    original_pred = predictions(lambda x: net(Probe(net, [""]).model_input(x)), x_test)
    torch.manual_seed(0)
    wrapper = FeatureAligned(net, args.layer, steps=args.align_steps, preserve=args.preserve,
                             trainable=args.trainable, lora_rank=args.lora_rank, init=args.init,
                             learn_r0=not args.no_learn_r0, learn_tau=not args.no_learn_tau)
    before = invviz.invert(wrapper, held)
    loader = torch.utils.data.DataLoader(x_train, batch_size=args.batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    steps = max(1, round(args.epochs * len(loader)))
    run = args.run or (f"{args.layer} {wrapper.preserve} {args.trainable} lr {args.lr:g} T {args.align_steps}"
                       f" distill {args.distill:g} feature {args.feature:g} anchor {args.anchor:g} {args.epochs:g} ep")
    os.makedirs(args.work, exist_ok=True)
    t0 = time.perf_counter()
    hist = train_aligned(wrapper, loader, schedule=TrainSchedule(max_steps=steps, checkpoint_every=100),
                         lr=args.lr, distill_weight=args.distill,
                         feature_weight=args.feature, anchor_weight=args.anchor,
                         checkpoint=os.path.join(args.work, run.replace(" ", "_") + ".pt"))
    seconds = time.perf_counter() - t0
    after = invviz.invert(wrapper, held)
    wrapped_pred = predictions(wrapper, x_test)
    summary[run] = {
        "command": "python benchmarks/fa_wrapper_fashion.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else (f"--{k.replace('_', '-')}" if v else "")
            for k, v in vars(args).items() if k not in ("out", "work", "figure", "classifier", "baselines_only")
            and v is not None).replace("  ", " ").strip(),
        "layer": args.layer, "preserve": wrapper.preserve, "trainable": args.trainable, "steps": len(hist),
        "epochs": len(hist) / len(loader), "psnr_before_db": float(before.psnr.mean()),
        "psnr_db": float(after.psnr.mean()), "ssim": float(after.ssim.mean()),
        "test_accuracy_original": float((original_pred == y_test).float().mean()),
        "test_accuracy_wrapped": float((wrapped_pred == y_test).float().mean()),
        "top1_agreement": float((wrapped_pred == original_pred).float().mean()),
        "taus": wrapper.taus.tolist(), "train_seconds": seconds, "seconds_per_step": seconds / max(1, len(hist)),
        "last_losses": hist[-1] if hist else {},
    }
    write_json(args.out, summary)
    print(json.dumps(summary[run], indent=1))
    if args.figure:
        from invviz.plotting import save_grid

        save_grid(torch.cat([held[:16], before.images[:16], after.images[:16]]), args.figure, nrow=16)


if __name__ == "__main__":
    main()
