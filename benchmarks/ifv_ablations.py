"""Grad-IFV experiments 3 and 4 (Reinbold & Westermann 2020, sec. 3.6 and 3.7) on EfficientNet-Lite0 `blocks.4`, as tables.

    python benchmarks/ifv_ablations.py features   # exp. 3: p = 0 vs 1 x first-K features x aggregation
    python benchmarks/ifv_ablations.py params     # exp. 4: pixel, FFT, low-frequency FFT (p = 1, max-pool + mean)

Each cell realizes the same Hoyer-sampled targets (one per batch element; Adam then L-BFGS, no transforms), runs
plain Grad-IFV on every realization and reports the angular distance of the prediction and of the feature response
to the target (median, 95th percentile), the mean squared coefficient of the target on the singular vector of the
smallest singular value (`c_0^2`, 1 when IFV recovers the target exactly; the seed's lowest bar in Fig. 3), the
realizations' final gradient norm and the seconds per realization and per IFV. "First K features" is the seed's
"first K filters": the network is cut after `blocks.4` and its first K channels are the layer IFV sees.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
import torch
from _common import stats  # noqa: E402  (median, p95, mean)
from torch import nn

import invviz  # noqa: F401  (first: makes torchvision importable)
from invviz import load_model
from invviz.ifv import IFVObjective, angle_deg, realize, recover_objective, sample_targets
from invviz.models import Capture, preprocessing_of
from invviz.optvis import FFTImage, PixelImage


class FirstChannels(nn.Module):
    """The first `k` channels of an NCHW feature map: a layer of `k` features."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.k]


def cut_lite0(model: nn.Module, k: int) -> nn.Sequential:
    """Lite0 up to `blocks.4`, then its first `k` channels (layer name `"features"`); same preprocessing."""
    net = nn.Sequential()
    net.add_module("conv_stem", model.conv_stem)
    net.add_module("bn1", model.bn1)
    net.add_module("blocks", nn.Sequential(*list(model.blocks)[:5]))
    net.add_module("features", FirstChannels(k))
    net.invviz_preprocessing = preprocessing_of(model)
    return net.eval()


PARAMS = {
    "pixel": lambda size, b, g: PixelImage(size, b, rng=g),
    "fft": lambda size, b, g: FFTImage(size, b, decay_power=0.0, rng=g),
    "fft_lowfreq": lambda size, b, g: FFTImage(size, b, decay_power=1.0, rng=g),
}


def cell(net: nn.Module, targets: torch.Tensor, *, p: float, agg: str, param: str, args) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    form = IFVObjective(cossim_pow=p, aggregation=agg)
    r = realize(net, "features", targets, form=form, size=args.size,
                param=PARAMS[param](args.size, len(targets), gen), adam_steps=args.adam, lbfgs_steps=args.lbfgs,
                seed=args.seed)
    pred, resp, c0, secs = [], [], [], 0.0
    for i in range(len(targets)):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # far-from-optimum warnings are reported as the gradient norm instead
            rec = recover_objective(net, "features", r.element(i), form=form, target=targets[i], points=1)
        secs += time.perf_counter() - t0
        pred.append(angle_deg(rec.direction, targets[i]))
        resp.append(angle_deg(rec.response, targets[i]))
        c0.append(float(rec.target_coefficients[0] ** 2))
    return {"prediction_deg": stats(pred), "response_deg": stats(resp), "c0_squared_mean": float(np.mean(c0)),
            "grad_norm_median": float(r.grad_norm.median()), "seconds_per_realization": r.seconds / len(targets),
            "seconds_per_ifv": secs / len(targets), "samples": len(targets)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=["features", "params"])
    ap.add_argument("--features", default="16,48,112", help="first-K channel counts (exp. 3)")
    ap.add_argument("--aggregations", default="maxpool_mean,mean,pick")
    ap.add_argument("--powers", default="0,1")
    ap.add_argument("--params", default="pixel,fft,fft_lowfreq")
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--adam", type=int, default=400)
    ap.add_argument("--lbfgs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or f"benchmarks/results/ifv_ablation_{args.experiment}.json"
    torch.manual_seed(args.seed)
    model = load_model("tf_efficientnet_lite0")
    full = cut_lite0(model, 10 ** 6)
    with torch.no_grad(), Capture(model, ["blocks.4"]) as cap:  # the cut network is the same layer
        x = torch.rand(1, 3, args.size, args.size)
        assert torch.allclose(cap.run(x)["blocks.4"], full(x), atol=1e-5)
    results = json.load(open(out)) if os.path.exists(out) else {}
    if args.experiment == "features":
        grid = [(int(k), agg, float(p), "pixel") for k in args.features.split(",")
                for agg in args.aggregations.split(",") for p in args.powers.split(",")]
    else:
        grid = [(112, "maxpool_mean", 1.0, param) for param in args.params.split(",")]
    for k, agg, p, param in grid:
        key = f"k{k}_{agg}_p{p:g}_{param}"
        if key in results:
            continue
        targets, _ = sample_targets(k, args.targets, canonical=False, rng=torch.Generator().manual_seed(k))
        results[key] = {"features": k, "aggregation": agg, "cossim_pow": p, "param": param,
                        **cell(cut_lite0(model, k), targets, p=p, agg=agg, param=param, args=args)}
        print(key, json.dumps(results[key]), flush=True)
        results["command"] = (f"python benchmarks/ifv_ablations.py {args.experiment} --targets {args.targets}"
                              f" --size {args.size} --adam {args.adam} --lbfgs {args.lbfgs}")
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
