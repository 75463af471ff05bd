"""What the benchmark scripts share: summary statistics, a wall-clock timer, results merged into one JSON with the
exact command that made them, and the small Fashion-MNIST classifier two experiments train.

The scripts import it as `from _common import ...` (a script's own folder is on `sys.path` when it runs), and no
script imports another.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

import invviz  # noqa: F401  (first: makes torchvision importable with any torch build)
from invviz.io import write_json
from invviz.models import Preprocessing

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# the Grad-IFV realizations benchmarks/ifv_multipoint_sweep.py tunes on (benchmarks/ifv_experiment1.py reports the
# others): every SWEEP_STRIDE-th from SWEEP_START
SWEEP_START, SWEEP_STRIDE = 2, 8


def stats(x: list[float] | torch.Tensor) -> dict[str, float]:
    """Median, 95th percentile and mean of a list of values (angles, SSIMs, gradient norms)."""
    a = np.asarray(torch.as_tensor(x), dtype=np.float64)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


@contextlib.contextmanager
def timed(into: dict[str, float], key: str) -> Iterator[None]:
    """Wall-clock seconds of the block, stored in `into[key]`."""
    t = time.perf_counter()
    try:
        yield
    finally:
        into[key] = time.perf_counter() - t


def command() -> str:
    """The command that is running, as a user would type it again."""
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def save_result(path: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
    """Merge `result` under `key` into the JSON at `path` (atomically), with the exact command."""
    merged = json.load(open(path)) if os.path.exists(path) else {}
    merged[key] = {**result, "command": command()}
    write_json(path, merged)
    return merged


class FashionNet(nn.Module):
    """Two convs and two linear layers; takes `(B, 1 or 3, 28, 28)` (RGB is averaged to grey)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ELU())
        self.fc = nn.Linear(64, 11)
        self.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 28, 28),
                                                  source="trained here on Fashion-MNIST")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        return self.fc(self.features(x))
