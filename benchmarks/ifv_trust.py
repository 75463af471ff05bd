"""Grad-IFV's trust checks, calibrated: how often `recover_objective` warns on good and on bad realizations.

    python benchmarks/ifv_trust.py            # ~30 min on 2 CPU cores

Known targets (non-negative, Hoyer sparseness uniform) are realized on several architectures — randomly
initialised torchvision ResNet-18 and timm ConvNeXt-atto and ViT, and the pretrained EfficientNet-Lite0 — once to
convergence (Adam then L-BFGS, the recipe IFV needs) and once stopped early (a few Adam steps). `recover_objective`
(its defaults, the 9-point solver) then predicts each target. A prediction is *good* when it lies within
`--good-deg` of the target and *bad* when it lies beyond `--bad-deg`. Reported per check and for the combination the
library uses (`trusted`): the fraction of good predictions it warns on (false alarms) and of bad predictions it
warns on (detections), with every measured statistic written to `--out` so the thresholds can be re-derived.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

import invviz
from invviz.ifv import angle_deg, realize, recover_objective, sample_targets
from invviz.ifv import recover as recover_module
from invviz.io import write_json
from invviz.models import Preprocessing


def architectures(names: list[str]):
    import timm
    import torchvision

    torch.manual_seed(0)
    out = {}
    if "resnet18" in names:
        m = torchvision.models.resnet18().eval()
        m.invviz_preprocessing = Preprocessing(source="ImageNet mean/std")
        out["resnet18"] = (m, "layer3", 64)
    if "convnext_atto" in names:
        m = timm.create_model("convnext_atto", pretrained=False).eval()
        out["convnext_atto"] = (m, "stages.1", 64)
    if "vit" in names:
        m = timm.models.vision_transformer.VisionTransformer(img_size=64, patch_size=8, embed_dim=96, depth=4,
                                                             num_heads=3).eval()
        m.invviz_preprocessing = Preprocessing(input_size=(3, 64, 64), fixed_input_size=True, source="ImageNet")
        out["vit"] = (m, "blocks.2", 64)
    if "lite0" in names:
        out["lite0"] = (invviz.load_model("tf_efficientnet_lite0"), "blocks.4", 96)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="resnet18,convnext_atto,vit,lite0")
    ap.add_argument("--targets", type=int, default=5, help="targets per architecture and setting")
    ap.add_argument("--good-deg", type=float, default=10.0)
    ap.add_argument("--bad-deg", type=float, default=20.0)
    ap.add_argument("--points", type=int, default=9)
    ap.add_argument("--out", default="benchmarks/results/ifv_trust.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for arch, (model, layer, size) in architectures(args.archs.split(",")).items():
        k = invviz.Probe(model, [layer]).channels(layer, size)
        targets, hoyer = sample_targets(k, args.targets, canonical=False, rng=torch.Generator().manual_seed(1))
        for setting, (adam, lbfgs) in {"converged": (400, 100), "stopped early": (20, 0)}.items():
            t0 = time.perf_counter()
            real = realize(model, layer, targets, size=size, adam_steps=adam, lbfgs_steps=lbfgs, seed=2)
            for i in range(len(targets)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec = recover_objective(model, layer, real.element(i), points=args.points, target=targets[i])
                rows.append({
                    "arch": arch, "layer": layer, "setting": setting, "index": i, "hoyer": float(hoyer[i]),
                    "angle_deg": angle_deg(rec.direction, targets[i]),
                    "response_angle_deg": angle_deg(rec.response, targets[i]),
                    "relative_gradient": rec.relative_gradient, "response_cosine": rec.response_cosine,
                    "spectral_gap": rec.spectral_gap, "saturation": rec.saturation,
                    "grad_norm": float(real.grad_norm[i]), "warnings": rec.warnings})
                print(json.dumps({k2: v for k2, v in rows[-1].items() if k2 != "warnings"}), flush=True)
            print(f"{arch} {setting}: {time.perf_counter() - t0:.0f} s", flush=True)
    summary = summarize(rows, args.good_deg, args.bad_deg)
    write_json(args.out, {"command": "python benchmarks/ifv_trust.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"), "summary": summary,
        "thresholds": {"far_from_optimum": recover_module.FAR_FROM_OPTIMUM,
                       "min_response_cosine": recover_module.MIN_RESPONSE_COSINE,
                       "max_saturation": recover_module.MAX_SATURATION,
                       "min_spectral_gap": recover_module.MIN_SPECTRAL_GAP}, "rows": rows})
    print(json.dumps(summary, indent=1))


def summarize(rows: list[dict], good_deg: float, bad_deg: float) -> dict:
    good = [r for r in rows if r["angle_deg"] <= good_deg]
    bad = [r for r in rows if r["angle_deg"] > bad_deg]
    checks = {"any (trusted = False)": lambda r: bool(r["warnings"]),
              "not near an optimum": lambda r: any("not near an optimum" in w for w in r["warnings"]),
              "trivial direction": lambda r: any("barely respond" in w for w in r["warnings"]),
              "saturated": lambda r: any("saturated" in w for w in r["warnings"]),
              "not identified": lambda r: any("not separated" in w for w in r["warnings"])}
    out = {f"good predictions (<= {good_deg:g} deg)": len(good), f"bad predictions (> {bad_deg:g} deg)": len(bad),
           "all": len(rows)}
    for name, fires in checks.items():
        out[f"warns on good: {name}"] = sum(map(fires, good)) / max(1, len(good))
        out[f"warns on bad: {name}"] = sum(map(fires, bad)) / max(1, len(bad))
    by = {}
    for r in rows:
        key = f"{r['arch']} / {r['setting']}"
        by.setdefault(key, []).append(r["angle_deg"])
    out["median angle by architecture and setting"] = {k: sorted(v)[len(v) // 2] for k, v in by.items()}
    return out


if __name__ == "__main__":
    main()
