"""Feature alignment, experiment 2: Fashion-MNIST with the authors' MNIST encoder (Farias & Maziero 2023, Tables 2-3, Fig. 15).

    python benchmarks/fa_fashion.py --methods fa,ae,local,vfa,vae,vfa_gan --epochs 3
    python benchmarks/fa_fashion.py --memory       # training memory of global vs local FA

Each method trains the same encoder (4 convs, FC 4096, latent 128) on the 60k training images (Debian package
`dataset-fashion-mnist`) with the authors' settings (zeros start, T = 1, tau = 1, Adam 1e-4 betas (0.5, 0.999),
orthogonal init, weight clamp sqrt(2)); AE and VAE add the mirrored decoder; VFA-GAN adds a refiner and a
least-squares discriminator (lambda 0.01). Local FA trains the MLP 784-1024-512-128 with asinh layer by layer.
Checkpoints under --work resume. Reported on 1000 held-out test images: reconstruction MSE and PSNR, model size
(without the discriminator), time per decoded image; for the samplers (VFA, VFA-GAN, VAE) the time per sample and the
Frechet distance of 1000 samples to test images, computed on the 64-d penultimate features
of a classifier trained here on Fashion-MNIST (not Inception: its weights cannot be fetched offline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from _common import FashionNet  # noqa: E402  (the small classifier benchmarks/ifv_experiment2.py trains)
from torch import nn

import invviz  # noqa: F401
from invviz.align import (
    VFAGAN,
    FashionDecoder,
    FashionEncoder,
    LocalFA,
    clamp_weights_,
    decode,
    fa_loss,
    kl_divergence,
    mean_latent,
    orthogonal_init_,
    vfa_loss,
    vfa_sample,
)
from invviz.data import fashion_mnist
from invviz.metrics import frechet_distance, psnr
from invviz.training import TrainSchedule, fit

METHODS = ("fa", "ae", "local", "vfa", "vae", "vfa_gan")
MLP = (784, 1024, 512, 128)  # the local-FA network (and, trained globally, its memory reference)


def build(method: str, lr: float) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
    """The networks of a method and their Adam optimizers (the authors' betas (0.5, 0.999))."""
    torch.manual_seed(0)
    if method in ("fa", "vfa"):
        mods = {"enc": orthogonal_init_(FashionEncoder(variational=method == "vfa"))}
    elif method in ("ae", "vae"):
        mods = {"enc": FashionEncoder(variational=method == "vae"), "dec": FashionDecoder()}
    elif method == "local":
        mods = {"enc": LocalFA(MLP)}
    elif method == "vfa_gan":
        gan = VFAGAN(orthogonal_init_(FashionEncoder(variational=True)), lam=0.01)
        mods = {"enc": gan.encoder, "refiner": gan.refiner, "disc": gan.discriminator}
    else:
        raise SystemExit(f"unknown method {method}; choose from {METHODS}")
    if method == "vfa_gan":
        opts = {k: torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, 0.999)) for k, m in mods.items()}
    else:
        params = [p for m in mods.values() for p in m.parameters()]
        opts = {"adam": torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))}
    return mods, opts


def make_step(method: str, mods: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer]):
    enc, dec = mods["enc"], mods.get("dec")
    if method == "vfa_gan":
        gan = VFAGAN(enc, mods["refiner"], mods["disc"], lam=0.01)
        named = {"encoder": opts["enc"], "refiner": opts["refiner"], "discriminator": opts["disc"]}
        return lambda batch, _: gan.train_step(batch[0], named)
    if method == "local":
        def local_step(batch, _):
            return {"loss": torch.tensor(sum(enc.train_step(batch[0].clamp(0.01, 0.99), opts["adam"])))}
        return local_step
    opt = opts["adam"]

    def step(batch, _):
        x = batch[0].clamp(0.01, 0.99)
        logs = {}
        if method == "fa":
            loss, _, _ = fa_loss(enc, x)
        elif method == "vfa":
            out = vfa_loss(enc, x)
            loss = out["loss"]
            logs["rec"] = out["recon"].detach()
        elif method == "ae":
            loss = ((dec(enc(x)) - x) ** 2).flatten(1).sum(1).mean()
        else:  # vae
            mu, logvar = enc.stats(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec = ((dec(z) - x) ** 2).flatten(1).sum(1).mean()
            loss = rec + kl_divergence(mu, logvar).mean()
            logs["rec"] = rec.detach()
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
    with torch.enable_grad():
        if method == "fa":
            return decode(enc, enc(x), tuple(x.shape))
        if method == "vfa":
            return decode(enc, mean_latent(enc, x), tuple(x.shape))
        if method == "vfa_gan":
            return VFAGAN(enc, mods["refiner"], mods["disc"]).reconstruct(x)
    if method in ("ae", "vae"):
        return dec(enc.stats(x)[0])
    return enc.decode(enc(x)).clamp(0, 1).reshape(x.shape)


@torch.no_grad()
def sample(method: str, mods: dict[str, nn.Module], n: int) -> torch.Tensor | None:
    g = torch.Generator().manual_seed(1)
    if method == "vfa":
        return vfa_sample(mods["enc"], n, (1, 28, 28), rng=g)
    if method == "vfa_gan":
        return VFAGAN(mods["enc"], mods["refiner"], mods["disc"]).sample(n, (1, 28, 28), rng=g)
    if method == "vae":
        return mods["dec"](torch.randn(n, 128, generator=g))
    return None


def memory_probe(kind: str, batch: int) -> float:
    """Peak resident memory (MiB) added by one training step at `batch`, in this fresh process, after a batch-2
    warm-up step has allocated the optimizer state. `kind`: fa_conv (global FA, the conv encoder), fa_mlp (global FA
    through the local-FA MLP), local_mlp (local FA, Algorithm 2, on the same MLP)."""
    import resource

    torch.manual_seed(0)
    torch.set_num_threads(1)
    if kind == "fa_conv":
        net = orthogonal_init_(FashionEncoder())
    else:
        net = LocalFA(MLP)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.999))

    def one(n: int) -> None:
        x = torch.rand(n, 1, 28, 28).clamp(0.01, 0.99)
        if kind == "local_mlp":
            net.train_step(x, opt)
            return
        enc = net if kind == "fa_conv" else (lambda r: net(r))
        loss, _, _ = fa_loss(enc, x if kind == "fa_conv" else x.flatten(1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one(2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    one(batch)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def memory_table(batch: int) -> dict[str, float]:
    import subprocess

    out = {}
    for kind in ("fa_conv", "fa_mlp", "local_mlp"):
        res = subprocess.run([sys.executable, __file__, "--memory-probe", kind, "--batch", str(batch)],
                             capture_output=True, text=True, check=True)
        out[kind] = float(res.stdout.strip().splitlines()[-1])
    return out


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
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--memory", action="store_true", help="only measure training memory: global vs local FA")
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    ap.add_argument("--work", default="benchmarks/results/fa_fashion")
    ap.add_argument("--out", default="benchmarks/results/fa_fashion.json")
    ap.add_argument("--no-figures", action="store_true", help="do not write the sample grids into assets/")
    args = ap.parse_args()
    if args.memory_probe:
        print(memory_probe(args.memory_probe, args.batch))
        return
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    results.pop("command", None)
    if args.memory:
        table = {str(b): memory_table(b) for b in (128, 512, 2048)}
        results["memory_mib_per_training_step"] = {"by_batch": table, "command": "python benchmarks/fa_fashion.py"
                                                   " --memory"}
        print(json.dumps(table))
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        return
    os.makedirs(args.work, exist_ok=True)
    x, y = fashion_mnist("train")
    xt, _ = fashion_mnist("test", limit=1000)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=args.batch, shuffle=True,
                                         generator=torch.Generator())
    max_steps = int(args.epochs * len(loader))
    clf = real_feats = None  # the Frechet classifier is trained only when a sampler (VFA, VAE) is run
    for method in args.methods.split(","):
        mods, opts = build(method, args.lr)
        t0 = time.perf_counter()
        hist = fit(make_step(method, mods, opts), loader, schedule=TrainSchedule(max_steps=max_steps),
                   modules=mods, optimizers=opts,
                   checkpoint=os.path.join(args.work, f"{method}.pt"), desc=method)
        train_s = time.perf_counter() - t0
        for m in mods.values():
            m.eval()
        t0 = time.perf_counter()
        rec = reconstruct(method, mods, xt.clamp(0.01, 0.99))
        per_image = (time.perf_counter() - t0) / len(xt)
        p = psnr(xt, rec)
        size = sum(q.numel() for k, m in mods.items() if k != "disc" for q in m.parameters())
        entry = {"steps": len(hist), "epochs": len(hist) / len(loader), "mse": float(((xt - rec) ** 2).mean()),
                 "psnr_db": float(p.mean()), "params_without_discriminator": size,
                 "seconds_per_decoded_image": per_image, "train_seconds_this_run": train_s,
                 "command": f"python benchmarks/fa_fashion.py --methods {method} --epochs {args.epochs}"}
        t0 = time.perf_counter()
        samples = sample(method, mods, 1000)
        if samples is not None:
            entry["seconds_per_sample"] = (time.perf_counter() - t0) / len(samples)
            if clf is None:
                clf = classifier(args.work)
                real_feats = features(clf, xt)
            entry["frechet_classifier_features"] = frechet_distance(features(clf, samples), real_feats)
        results[method] = entry
        print(method, json.dumps(entry), flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        if not args.no_figures:
            import torchvision.utils as vutils

            grid = torch.cat([xt[:8], rec[:8]] + ([samples[:16]] if samples is not None else []))
            vutils.save_image(grid, os.path.join("assets", f"fa_fashion_{method}.png"), nrow=8)


if __name__ == "__main__":
    main()
