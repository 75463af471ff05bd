"""Time to quality against torch-lucent 0.1.8, side by side in one run: how long `invviz.visualize` (as a user calls
it) takes to render units as strong as lucent's after its 512 steps.

    python -m venv --system-site-packages .bench-venv
    .bench-venv/bin/pip install --no-deps torch-lucent==0.1.8 kornia==0.9.0 kornia-rs
    .bench-venv/bin/python benchmarks/bench_atlas_vs_lucent.py          # ~15 min on 2 CPU cores

Setting: torchvision resnet18 (random init, seed 0: no weights can be downloaded here), `layer3`, 128 px, FFT +
colour decorrelation, 2 threads. Lucent renders units 0..3 one at a time with its recipe (Adam 0.05, standard
transforms, 512 steps): its time per unit and each unit's final activation — the channel's mean at `layer3` on the
untransformed final image at 128 px, one function for both libraries. invviz renders units 0..B-1 in one
`visualize` call (B = 4: the user's four units; B = 16: an atlas's batch) for S steps with each of its recipes
(`recipe="lucid"`, Lucid's exactly, and the default); quality is reached at the shortest S (of `--steps`) where the
units 0..3 reach lucent's summed activation and at least 3 of the 4 reach lucent's own; the time per unit is that
call's wall time over B. Beside it, step / floor at batch 1 and 16: the render step against a bare
forward+backward of the truncated network at the sizes the transforms feed.
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
# visualize's own recipes, as a user calls them: "lucid" (Lucid's exactly) and the default (the fast recipe)
RECIPES = {"lucid": {"recipe": "lucid"}, "default": {}}
CONSTANT = {"lucid"}  # a constant-rate recipe's first S steps are an S-step run: one run gives every S


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


def invviz_batch(model, units: list[int], steps: int | None, recipe: dict, snapshots=()):
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


def quality(acts: list[float], lucent_acts: list[float]) -> dict:
    n = len(lucent_acts)
    reaching = sum(a >= b for a, b in zip(acts[:n], lucent_acts))
    return {"sum_first": sum(acts[:n]), "units_reaching": reaching,
            "reached": sum(acts[:n]) >= sum(lucent_acts) and reaching >= -(-3 * n // 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lucent-units", type=int, default=4)
    ap.add_argument("--batches", default="4,16")
    ap.add_argument("--steps", default="128,192,256,384,512,768")
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
    grid = [int(s) for s in args.steps.split(",")]
    for batch in (int(b) for b in args.batches.split(",")):
        units = list(range(batch))
        for name, recipe in RECIPES.items():
            rows = {}
            if name in CONSTANT:
                secs, res = invviz_batch(model, units, max(grid), recipe, snapshots=grid)
                for steps in grid:
                    t_s = secs * steps / max(grid)
                    rows[steps] = {"seconds": t_s, "seconds_per_unit": t_s / batch,
                                   **quality(activations(model, res.snapshots[steps]), lucent_acts)}
                    print(batch, name, steps, json.dumps(rows[steps]), flush=True)
            else:
                for steps in grid:
                    secs, res = invviz_batch(model, units, steps, recipe)
                    rows[steps] = {"seconds": secs, "seconds_per_unit": secs / batch,
                                   **quality(activations(model, res.images), lucent_acts)}
                    print(batch, name, steps, json.dumps(rows[steps]), flush=True)
                    if rows[steps]["reached"]:
                        break
            secs, res = invviz_batch(model, units, None, recipe) if name not in CONSTANT else (None, None)
            default = None if res is None else {"steps": res.history.shape[0], "seconds": secs,
                                                "seconds_per_unit": secs / batch,
                                                **quality(activations(model, res.images), lucent_acts)}
            reached = [s for s, r in rows.items() if r["reached"]]
            best = min(reached) if reached else None
            out[f"{name} batch {batch}"] = {
                "recipe": recipe, "rows": rows, "steps_to_quality": best, "at_its_default_steps": default,
                "seconds_per_unit_to_quality": rows[best]["seconds_per_unit"] if best else None,
                "speedup_over_lucent": lucent_unit_s / rows[best]["seconds_per_unit"] if best else None,
                "speedup_at_default_steps": (lucent_unit_s / default["seconds_per_unit"]
                                             if default and default["reached"] else None)}
            print(batch, name, json.dumps({k: v for k, v in out[f"{name} batch {batch}"].items() if k != "rows"}),
                  flush=True)
    for transforms, recipe in (("standard", "lucid"), ("fused", "default")):
        sizes = fed_sizes(transforms)
        for b in (1, 16):
            secs, _ = invviz_batch(model, list(range(b)), 32, RECIPES[recipe])
            step_ms = 1e3 * secs / 32
            floor = floor_ms(model, b, sizes)
            out[f"step_over_floor {transforms} batch {b}"] = {"step_ms": step_ms, "floor_ms": floor,
                                                               "ratio": step_ms / floor}
            print(transforms, b, json.dumps(out[f"step_over_floor {transforms} batch {b}"]), flush=True)
    write_json(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if " batch " not in k or k.startswith("step")}, indent=1))


if __name__ == "__main__":
    main()
