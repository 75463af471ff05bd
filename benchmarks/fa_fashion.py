"""Feature alignment, experiment 2: Fashion-MNIST with the authors' MNIST encoder (seed 000, Tables 2-3, Fig. 15).

    python benchmarks/fa_fashion.py --methods fa,ae,local,vfa,vae --epochs 3     # CPU: about 1 h for all five

Each method trains the same encoder (4 convs, FC 4096, latent 128) on the 60k training images (Debian package
`dataset-fashion-mnist`) with the authors' settings (zeros start, T = 1, tau = 1, Adam 1e-4 betas (0.5, 0.999),
orthogonal init, weight clamp sqrt(2)); AE and VAE add the mirrored decoder. Checkpoints under --work resume.
Reported on 1000 held-out test images: reconstruction MSE and PSNR, model size, time per decoded image; for the
samplers (VFA, VAE) the Frechet distance of 1000 samples to test images, computed on the 64-d penultimate features
of a classifier trained here on Fashion-MNIST (not Inception: its weights cannot be fetched offline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import invviz  # noqa: F401
import torch
from torch import nn

from invviz.align import FashionDecoder, FashionEncoder, LocalFA, clamp_weights_, decode, fa_loss, orthogonal_init_
from invviz.data import fashion_mnist
from invviz.metrics import frechet_distance, psnr
from invviz.training import fit

sys.path.insert(0, os.path.dirname(__file__))
from ifv_experiment2 import FashionNet  # noqa: E402  (the small classifier trained here)


def build(method: str) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    if method in ("fa", "vfa"):
        return {"enc": orthogonal_init_(FashionEncoder(variational=method == "vfa"))}
    if method in ("ae", "vae"):
        return {"enc": FashionEncoder(variational=method == "vae"), "dec": FashionDecoder()}
    if method == "local":
        return {"enc": LocalFA((784, 1024, 512, 128))}
    raise SystemExit(f"unknown method {method}")


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)


def make_step(method: str, mods: dict[str, nn.Module], opt: torch.optim.Optimizer):
    enc, dec = mods["enc"], mods.get("dec")

    def step(batch, _):
        x = batch[0].clamp(0.01, 0.99)
        logs = {}
        if method == "fa":
            loss, _, _ = fa_loss(enc, x)
        elif method == "vfa":
            mu, logvar = enc.stats(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec, _, _ = fa_loss(enc, x, z=z)
            beta = torch.rand(x.shape[0])  # beta ~ U(0, 1) per example
            loss = rec + (beta * kl(mu, logvar)).mean()
            logs["rec"] = rec.detach()
        elif method == "ae":
            loss = ((dec(enc(x)) - x) ** 2).flatten(1).sum(1).mean()
        elif method == "vae":
            mu, logvar = enc.stats(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec = ((dec(z) - x) ** 2).flatten(1).sum(1).mean()
            loss = rec + kl(mu, logvar).mean()
            logs["rec"] = rec.detach()
        else:  # local FA: the sum of independent per-layer losses
            loss = sum(enc.local_losses(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if method in ("fa", "vfa"):
            clamp_weights_(enc)
        return {"loss": loss.detach(), **logs}

    return step


@torch.no_grad()
def reconstruct(method: str, mods: dict[str, nn.Module], x: torch.Tensor) -> torch.Tensor:
    enc, dec = mods["enc"], mods.get("dec")
    if method in ("fa", "vfa"):
        z = enc.stats(x)[0] if method == "vfa" else enc(x)
        with torch.enable_grad():
            return decode(enc if method == "fa" else (lambda r: enc.stats(r)[0]), z, tuple(x.shape))
    if method in ("ae", "vae"):
        return dec(enc.stats(x)[0])
    return enc.decode(enc(x)).clamp(0, 1).reshape(x.shape)


@torch.no_grad()
def sample(method: str, mods: dict[str, nn.Module], n: int) -> torch.Tensor | None:
    z = torch.randn(n, 128, generator=torch.Generator().manual_seed(1))
    if method == "vfa":
        with torch.enable_grad():
            return decode(mods["enc"], z, (n, 1, 28, 28))
    if method == "vae":
        return mods["dec"](z)
    return None


def classifier(work: str) -> FashionNet:
    path = os.path.join(work, "classifier.pt")
    net = FashionNet()
    if os.path.exists(path):
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    from ifv_experiment2 import train

    net, _ = train(2, 0)
    torch.save(net.state_dict(), path)
    return net


def features(net: FashionNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net.features(x[i:i + 500]) for i in range(0, len(x), 500)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="fa,ae,local,vfa,vae")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--work", default="benchmarks/results/fa_fashion")
    ap.add_argument("--out", default="benchmarks/results/fa_fashion.json")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    x, y = fashion_mnist("train")
    xt, _ = fashion_mnist("test", limit=1000)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=args.batch, shuffle=True,
                                         generator=torch.Generator())
    max_steps = int(args.epochs * len(loader))
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    clf = real_feats = None  # the Frechet classifier is trained only when a sampler (VFA, VAE) is run
    for method in args.methods.split(","):
        mods = build(method)
        params = [p for m in mods.values() for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=args.lr, betas=(0.5, 0.999))
        t0 = time.perf_counter()
        hist = fit(make_step(method, mods, opt), loader, modules=mods, optimizers={"adam": opt}, max_steps=max_steps,
                   checkpoint=os.path.join(args.work, f"{method}.pt"), desc=method)
        train_s = time.perf_counter() - t0
        for m in mods.values():
            m.eval()
        t0 = time.perf_counter()
        rec = reconstruct(method, mods, xt.clamp(0.01, 0.99))
        per_image = (time.perf_counter() - t0) / len(xt)
        p = psnr(xt, rec)
        entry = {"steps": len(hist), "epochs": len(hist) / len(loader), "mse": float(((xt - rec) ** 2).mean()),
                 "psnr_db": float(p.mean()), "params": sum(q.numel() for q in params),
                 "seconds_per_decoded_image": per_image, "train_seconds_this_run": train_s}
        samples = sample(method, mods, 1000)
        if samples is not None:
            if clf is None:
                clf = classifier(args.work)
                real_feats = features(clf, xt)
            entry["frechet_classifier_features"] = frechet_distance(features(clf, samples), real_feats)
        results[method] = entry
        results["command"] = f"python benchmarks/fa_fashion.py --methods {args.methods} --epochs {args.epochs}"
        print(method, json.dumps(entry), flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        import torchvision.utils as vutils

        grid = torch.cat([xt[:8], rec[:8]] + ([samples[:16]] if samples is not None else []))
        vutils.save_image(grid, os.path.join("assets", f"fa_fashion_{method}.png"), nrow=8)


if __name__ == "__main__":
    main()
