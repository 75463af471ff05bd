"""Which normalization classifies the bundled photos best with the offline EfficientNet-Lite0 weights?

For each photo with an unambiguous ImageNet label set, resize to 224 (antialiased bilinear), normalize with
ImageNet mean/std or with timm's 0.5/0.5, and report the probability mass on the label set and the top-1.
Run: python benchmarks/lite0_normalization.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import invviz  # noqa: F401  (first)
from invviz.data import load_photo
from invviz.models.loading import IMAGENET_MEAN, IMAGENET_STD

# photo -> acceptable ImageNet classes
LABELS = {
    "chelsea": [281, 282, 285],  # tabby, tiger cat, Egyptian cat
    "coffee": [967, 968],  # espresso, cup
    "grace_hopper": [652, 457, 834, 906],  # military uniform, bow tie, suit, Windsor tie
    "rocket": [657, 744, 812],  # missile, projectile, space shuttle
    "china": [698, 832, 668],  # palace, stupa, mosque
    "flower": [985, 738],  # daisy, pot
    "motorcycle_left": [670, 665],  # motor scooter, moped
}
NORMS = {"imagenet mean/std": (IMAGENET_MEAN, IMAGENET_STD), "0.5/0.5 (timm cfg)": ((0.5,) * 3, (0.5,) * 3)}


def main() -> None:
    model = invviz.load_model("tf_efficientnet_lite0")
    print(f"{'photo':16s}" + "".join(f"{n:>28s}" for n in NORMS))
    totals = {n: [] for n in NORMS}
    for name, classes in LABELS.items():
        x = F.interpolate(load_photo(name)[None], size=224, mode="bilinear", antialias=True, align_corners=False)
        row = f"{name:16s}"
        for norm, (mean, std) in NORMS.items():
            m = torch.tensor(mean).view(1, 3, 1, 1)
            s = torch.tensor(std).view(1, 3, 1, 1)
            with torch.no_grad():
                p = model((x - m) / s).softmax(-1)[0]
            mass = float(p[classes].sum())
            totals[norm].append(mass)
            row += f"{f'p(label)={mass:.3f} top1={int(p.argmax())}':>28s}"
        print(row)
    print(f"{'mean p(label)':16s}" + "".join(f"{sum(v) / len(v):>28.3f}" for v in totals.values()))


if __name__ == "__main__":
    main()
