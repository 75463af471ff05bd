"""The default (fast) recipe beside Lucid's, as pictures: the same units, seed and parameterization.

    python benchmarks/recipe_grid.py        # ~3 min on 2 CPU cores; writes assets/recipes_resnet18_layer3.png

torchvision resnet18 (random weights: no download here), `layer3` units 0-3, 128 px, FFT + decorrelation. Row 1:
`recipe="lucid"` at its 512 steps; row 2: the default recipe at its 384 steps; row 3: the default recipe at 512 steps.
Each tile's title is the unit's final objective.
"""

from __future__ import annotations

import os

import torch
import torchvision
from _common import RESULTS, save_result

import invviz

ASSET = os.path.join("assets", "recipes_resnet18_layer3.png")


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.set_num_threads(2)
    torch.manual_seed(0)
    probe = invviz.Probe(torchvision.models.resnet18().eval(), preprocessing=invviz.Preprocessing(source="ImageNet"))
    rows = {"lucid, 512 steps": {"recipe": "lucid"}, "default, 384 steps": {},
            "default, 512 steps": {"steps": 512}}
    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2.2 * len(rows)), squeeze=False)
    out = {}
    for r, (name, kw) in enumerate(rows.items()):
        res = invviz.visualize(probe, "layer3", [0, 1, 2, 3], size=128, progress=False, seed=0, **kw)
        out[name] = {"final": res.final.tolist(), "seconds": res.seconds}
        for u in range(4):
            ax = axes[r, u]
            ax.imshow(res.images[u].permute(1, 2, 0).numpy())
            ax.set_title(f"unit {u}: {float(res.final[u]):.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    invviz.io.save_figure(fig, os.path.join(os.path.dirname(os.path.dirname(RESULTS)), ASSET))
    save_result(os.path.join(RESULTS, "recipe_grid.json"), "resnet18 layer3", {**out, "asset": ASSET})


if __name__ == "__main__":
    main()
