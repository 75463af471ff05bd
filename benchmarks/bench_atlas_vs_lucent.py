"""Time to quality against torch-lucent 0.1.8, side by side in one run: how long until a unit's visualization is as
strong as lucent's after its 512 steps.

    python -m venv --system-site-packages .bench-venv
    .bench-venv/bin/pip install --no-deps torch-lucent==0.1.8 kornia==0.9.0 kornia-rs
    .bench-venv/bin/python benchmarks/bench_atlas_vs_lucent.py          # ~25 min on 2 CPU cores

Setting: torchvision resnet18 (random init, seed 0: no weights can be downloaded here), `layer3`, 128 px, FFT +
colour decorrelation, 2 threads. Lucent renders units 0..7 one at a time with its recipe (Adam 0.05, standard
transforms, 512 steps): its time per unit and each unit's final activation — the channel's mean at `layer3` on the
untransformed final image at 128 px, one function for both libraries. invviz renders a batch of 16 units (0..15, as an
atlas renders a layer) with a recipe for S steps; the time to quality is the shortest S (of `--steps`) at which the
units 0..7 reach lucent's summed activation, and the time per unit is that render's wall time over 16. Recipes:
`lucid` (Lucid's exactly: Adam 0.05, constant, the standard transforms chain) and `fast` (Adam 0.1 falling along a
cosine to 0.005, the standard draws fused into one resampling at 128 px). Beside it, step / floor at batch 1 and 16:
the render step against a bare forward+backward of the truncated network at the sizes fed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

import invviz
from invviz.io import write_json

import kornia  # noqa: E402  isort: skip
import kornia.geometry.transform as kgt  # noqa: E402  isort: skip

kornia.get_rotation_matrix2d = kgt.get_rotation_matrix2d  # lucent 0.1.8 calls names that kornia moved after 0.5
kornia.warp_affine = kgt.warp_affine

from lucent.optvis import param as lparam  # noqa: E402
from lucent.optvis import render as lrender  # noqa: E402
from lucent.optvis import transform as ltransform  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SIZE, LAYER = 128, "layer3"
RECIPES = {"lucid": {"lr": 0.05, "lr_schedule": "constant", "transforms": "standard"},
           "fast": {"lr": 0.1, "lr_schedule": "cosine", "transforms": "fused"}}


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def activations(model, images: torch.Tensor) -> list[float]:
    """The shared measure: each image's own unit (image i, unit i) at layer3, mean over space, at 128 px."""
    x = F.interpolate(images, size=SIZE, mode="bilinear", align_corners=False) if images.shape[-1] != SIZE else images
    trunk = torch.nn.Sequential(*list(model.children())[:7])
    with torch.no_grad():
        f = trunk((x - MEAN) / STD)
    return [float(f[i, i].mean()) for i in range(f.shape[0])]


def lucent_unit(model, unit: int, steps: int) -> tuple[float, torch.Tensor]:
    t = time.perf_counter()
    imgs = lrender.render_vis(
        model, f"{LAYER}:{unit}", param_f=lambda: lparam.image(SIZE, fft=True, decorrelate=True),
        optimizer=lambda p: torch.optim.Adam(p, lr=0.05), transforms=ltransform.standard_transforms,
        thresholds=(steps,), show_image=False, progress=False)
    return time.perf_counter() - t, torch.from_numpy(imgs[-1]).permute(0, 3, 1, 2).float()


def invviz_batch(model, units: list[int], steps: int, recipe: dict, snapshots=()):
    t = time.perf_counter()
    r = invviz.visualize(model, LAYER, units, steps=steps, size=SIZE, param="fft", progress=False, seed=0,
                         snapshots=snapshots, **recipe)
    return time.perf_counter() - t, r


def floor_ms(model, batch: int, sizes: list[int], reps: int = 2) -> float:
    trunk = torch.nn.Sequential(*list(model.children())[:7])
    for p in trunk.parameters():
        p.requires_grad_(False)
    inputs = {s: torch.rand(batch, 3, s, s, requires_grad=True) for s in set(sizes)}
    for x in inputs.values():
        trunk(x)[:, 0].mean().backward()
    totals = []
    for _ in range(reps):
        t = time.perf_counter()
        for s in sizes:
            (-trunk(inputs[s])[:, 0].mean()).backward()
        totals.append(time.perf_counter() - t)
    for p in trunk.parameters():
        p.requires_grad_(True)
    return 1e3 * statistics.median(totals) / len(sizes)


def fed_sizes(transforms: str, steps: int = 64) -> list[int]:
    tf = invviz.optvis.make_transforms(transforms)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, SIZE, SIZE)
    return [int(tf(img, g).shape[-1]) for _ in range(steps)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lucent-units", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", default="64,128,192,256,384,512")
    ap.add_argument("--lucent-steps", type=int, default=512)
    ap.add_argument("--out", default="benchmarks/results/bench_atlas_vs_lucent.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = make_model()
    n = args.lucent_units
    out = {"command": "python benchmarks/bench_atlas_vs_lucent.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"), "torch": torch.__version__}
    lucent = [lucent_unit(model, u, args.lucent_steps) for u in range(n)]
    lucent_acts = [activations(model, img)[0] for _, img in lucent]
    lucent_unit_s = statistics.median(t for t, _ in lucent)
    out["lucent"] = {"seconds_per_unit": lucent_unit_s, "activations": lucent_acts, "sum": sum(lucent_acts)}
    print(json.dumps(out["lucent"]), flush=True)
    units = list(range(args.batch))
    grid = [int(s) for s in args.steps.split(",")]
    for name, recipe in RECIPES.items():
        rows = {}
        if recipe["lr_schedule"] == "constant":  # one run; a constant recipe's first S steps are an S-step run
            secs, res = invviz_batch(model, units, max(grid), recipe, snapshots=grid)
            for steps in grid:
                acts = activations(model, res.snapshots[steps])
                t_s = secs * steps / max(grid)
                rows[steps] = {"seconds": t_s, "seconds_per_unit": t_s / len(units), "sum_first": sum(acts[:n]),
                               "units_reaching": sum(a >= b for a, b in zip(acts[:n], lucent_acts))}
                print(name, steps, json.dumps(rows[steps]), flush=True)
        for steps in grid if recipe["lr_schedule"] != "constant" else []:
            secs, res = invviz_batch(model, units, steps, recipe)
            acts = activations(model, res.images)
            rows[steps] = {"seconds": secs, "seconds_per_unit": secs / len(units), "sum_first": sum(acts[:n]),
                           "units_reaching": sum(a >= b for a, b in zip(acts[:n], lucent_acts))}
            print(name, steps, json.dumps(rows[steps]), flush=True)
            if rows[steps]["sum_first"] >= sum(lucent_acts):
                break
        reached = [s for s, r in rows.items() if r["sum_first"] >= sum(lucent_acts)]
        best = min(reached) if reached else None
        out[name] = {"recipe": recipe, "rows": rows, "steps_to_quality": best,
                     "seconds_per_unit_to_quality": rows[best]["seconds_per_unit"] if best else None,
                     "speedup_over_lucent": lucent_unit_s / rows[best]["seconds_per_unit"] if best else None}
        print(name, json.dumps({k: v for k, v in out[name].items() if k != "rows"}), flush=True)
    for transforms in ("standard", "fused"):
        sizes = fed_sizes(transforms)
        for b in (1, args.batch):
            units_b = list(range(b))
            secs, _ = invviz_batch(model, units_b, 32, RECIPES["fast" if transforms == "fused" else "lucid"])
            step_ms = 1e3 * secs / 32
            floor = floor_ms(model, b, sizes)
            out[f"step_over_floor {transforms} batch {b}"] = {"step_ms": step_ms, "floor_ms": floor,
                                                               "ratio": step_ms / floor}
            print(transforms, b, json.dumps(out[f"step_over_floor {transforms} batch {b}"]), flush=True)
    write_json(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if k not in ("lucid", "fast")}, indent=1))


if __name__ == "__main__":
    main()
