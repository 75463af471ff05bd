"""Settings that travel together, in one place, as frozen dataclasses: the library's verbs and the command line read
their defaults from here (no default is written twice). Nothing here imports torch, so the command line's parser
(and `--help`) is built without it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a feature visualization is optimized: Adam's step count, learning rate and its schedule, and the random
    transforms. One recipe travels to `visualize`, `render`, the atlas, concepts and the command line."""

    steps: int
    lr: float
    lr_schedule: str  # "constant" or "cosine" (from lr down to lr / 20)
    transforms: str  # "standard" (Lucid's chain), "fused" (the same draws, one resampling), "none"


RECIPES = {
    # Lucid's exactly: Adam 0.05, constant, the standard transforms chained, 512 steps
    "lucid": Recipe(steps=512, lr=0.05, lr_schedule="constant", transforms="standard"),
    # invviz's default: a cosine-falling rate from 0.1 and the same draws fused into one resampling reach Lucid's
    # quality in fewer steps (benchmarks/bench_atlas_vs_lucent.py; the figures in benchmarks/README.md)
    "fast": Recipe(steps=384, lr=0.1, lr_schedule="cosine", transforms="fused"),
}
DEFAULT_RECIPE = "fast"

__all__ = ["Recipe", "RECIPES", "DEFAULT_RECIPE"]
