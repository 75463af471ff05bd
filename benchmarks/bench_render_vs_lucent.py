"""Render speed against torch-lucent 0.1.8, side by side in one run (issue #2's benchmark).

Setting: torchvision resnet18 (random init, seed 0: no weights can be downloaded here), layer3 channel 0, 128 px,
128 steps, FFT + colour decorrelation, standard transforms, Adam 0.05, 2 CPU threads.

Run it in its own environment, so lucent and kornia stay out of invviz's:
    python -m venv --system-site-packages .bench-venv
    .bench-venv/bin/pip install --no-deps torch-lucent==0.1.8 kornia==0.9.0 kornia-rs
    .bench-venv/bin/python benchmarks/bench_render_vs_lucent.py [--repeats 3]

Prints per-step times (median of the repeats), the floor (one bare forward+backward of resnet18 truncated at
layer3, input gradients only; measured once per repeat between the renders, median) both at 128 px and replayed
at the exact input sizes the standard transforms feed the network in the render (they pad 12 and rescale, so the
network sees about 142 px, and oneDNN's speed varies a lot between neighbouring sizes), the ratios, the 16-channel batch throughput, and both final activations
measured by one shared function (channel mean of layer3 on the untransformed final image, at 128 px and at the
224 px lucent upsamples to).
"""

from __future__ import annotations

import argparse
import statistics
import time

import kornia  # noqa: E402
import kornia.geometry.transform as kgt  # noqa: E402
import torch
import torch.nn.functional as F
import torchvision

import invviz  # first: makes torchvision importable with the CPU build of torch

# lucent 0.1.8 calls names that kornia moved after 0.5
kornia.get_rotation_matrix2d = kgt.get_rotation_matrix2d
kornia.warp_affine = kgt.warp_affine

from lucent.optvis import param as lparam  # noqa: E402
from lucent.optvis import render as lrender  # noqa: E402
from lucent.optvis import transform as ltransform  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
STEPS, SIZE, LAYER, UNIT = 128, 128, "layer3", 0


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def activation(model, images: torch.Tensor, size: int) -> float:
    """Shared measure: mean of layer3 channel 0 on the untransformed images resized to `size`."""
    x = F.interpolate(images, size=size, mode="bilinear", align_corners=False) if images.shape[-1] != size else images
    trunk = torch.nn.Sequential(*list(model.children())[:7])
    with torch.no_grad():
        return float(trunk((x - MEAN) / STD)[:, UNIT].mean())


def render_sizes(seed: int = 0) -> list[int]:
    """The input sizes invviz's render feeds the network, step by step, for `seed` (same generator order)."""
    from invviz.optvis import FFTImage, standard_transforms

    g = torch.Generator().manual_seed(seed)
    img = FFTImage(SIZE, 1, rng=g)().detach()
    tf = standard_transforms()
    return [int(tf(img, g).shape[-1]) for _ in range(STEPS)]


def floor_ms(model, sizes: list[int], reps: int = 3) -> float:
    """Bare forward+backward of resnet18 truncated at layer3 (input gradients only), mean per step over `sizes`."""
    trunk = torch.nn.Sequential(*list(model.children())[:7])
    for p in trunk.parameters():
        p.requires_grad_(False)
    inputs = {s: torch.rand(1, 3, s, s, requires_grad=True) for s in set(sizes)}
    for x in inputs.values():  # warm up every size once
        trunk(x)[:, UNIT].mean().backward()
    totals = []
    for _ in range(reps):
        t = time.perf_counter()
        for s in sizes:
            (-trunk(inputs[s])[:, UNIT].mean()).backward()
        totals.append(time.perf_counter() - t)
    for p in trunk.parameters():
        p.requires_grad_(True)
    return 1e3 * statistics.median(totals) / len(sizes)


def run_invviz(model, units) -> tuple[float, torch.Tensor]:
    t = time.perf_counter()
    r = invviz.visualize(model, LAYER, units, steps=STEPS, size=SIZE, param="fft", transforms="standard", lr=0.05,
                         progress=False, seed=0)
    return time.perf_counter() - t, r.images


def run_lucent(model) -> tuple[float, torch.Tensor]:
    t = time.perf_counter()
    imgs = lrender.render_vis(
        model, f"{LAYER}:{UNIT}", param_f=lambda: lparam.image(SIZE, fft=True, decorrelate=True),
        optimizer=lambda p: torch.optim.Adam(p, lr=0.05), transforms=ltransform.standard_transforms,
        thresholds=(STEPS,), show_image=False, progress=False,
    )
    return time.perf_counter() - t, torch.from_numpy(imgs[-1]).permute(0, 3, 1, 2).float()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = make_model()
    sizes = render_sizes(0)
    floors128, floors = [], []
    inv, luc, batch16 = [], [], []
    acts = {"invviz": [], "lucent": []}
    for _ in range(args.repeats):  # interleaved (floors included), so machine noise hits all alike
        floors128.append(floor_ms(model, [SIZE] * STEPS, reps=1))
        floors.append(floor_ms(model, sizes, reps=1))
        s, img = run_invviz(model, UNIT)
        inv.append(s)
        acts["invviz"].append((activation(model, img, 128), activation(model, img, 224)))
        s, img = run_lucent(model)
        luc.append(s)
        acts["lucent"].append((activation(model, img, 128), activation(model, img, 224)))
        s, _ = run_invviz(model, list(range(16)))
        batch16.append(s)
    floor128, floor = statistics.median(floors128), statistics.median(floors)
    inv_ms = 1e3 * statistics.median(inv) / STEPS
    luc_ms = 1e3 * statistics.median(luc) / STEPS
    img_s_inv = 16 / statistics.median(batch16)
    img_s_luc = 1 / statistics.median(luc)
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} steps={STEPS} size={SIZE} torch={torch.__version__}")
    print(f"{'':28s}{'invviz':>10s}{'lucent':>10s}{'ratio':>10s}")
    print(f"{'ms / step (median)':28s}{inv_ms:10.1f}{luc_ms:10.1f}{luc_ms / inv_ms:9.2f}x")
    print(f"{'steps / s':28s}{1e3 / inv_ms:10.2f}{1e3 / luc_ms:10.2f}{luc_ms / inv_ms:9.2f}x")
    print(f"{'floor ms @128 px':28s}{floor128:10.1f}")
    print(f"{'floor ms @render sizes':28s}{floor:10.1f}   (sizes the transforms feed: {min(sizes)}..{max(sizes)} px,"
          f" mean {sum(sizes) / len(sizes):.0f})")
    print(f"{'step / floor @render sizes':28s}{inv_ms / floor:10.2f}")
    print(f"{'step / floor @128 px':28s}{inv_ms / floor128:10.2f}{luc_ms / floor128:10.2f}")
    print(f"{'16 channels: images / s':28s}{img_s_inv:10.3f}{img_s_luc:10.3f}{img_s_inv / img_s_luc:9.2f}x"
          "   (invviz: one batch of 16; lucent: one render per image)")
    for size_i, label in ((0, "final act. @128 (median)"), (1, "final act. @224 (median)")):
        a = statistics.median(v[size_i] for v in acts["invviz"])
        b = statistics.median(v[size_i] for v in acts["lucent"])
        print(f"{label:28s}{a:10.3f}{b:10.3f}")


if __name__ == "__main__":
    main()
