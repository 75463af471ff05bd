"""Grad-IFV's figures (Reinbold & Westermann 2020): the angle scatter with marginal histograms (the paper's Fig. 2)
and stacked target coefficients in the singular basis (the paper's Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..io import save_figure


def scatter_with_margins(x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str, path: str | None = None,
                         extra: tuple[Sequence[float], str] | None = None):
    """Angular errors of the prediction (x) against a baseline (y) per sample, with marginal histograms.

    `extra=(values, label)` adds a second prediction on the x axis (e.g. the multi-point solver). Returns the figure;
    saves it to `path` when given.
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5, 5))
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4), hspace=0.05, wspace=0.05)
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    ax.scatter(x, y, s=12, label="prediction")
    if extra is not None:
        ax.scatter(extra[0], y, s=12, marker="x", label=extra[1])
        top.hist(extra[0], bins=20, alpha=0.6, color="C1")
        ax.legend(loc="lower right")
    hi = max(max(x), max(y), *(extra[0] if extra else [0]))
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    top.hist(x, bins=20, alpha=0.6, color="C0")
    right.hist(y, bins=20, orientation="horizontal", color="C2")
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    if path:
        save_figure(fig, path)
    return fig


def coefficient_bars(coefficients: torch.Tensor, path: str | None = None, components: int = 4):
    """Stacked bars of the squared coefficients of each target in the singular basis (ascending singular values):
    the first `components` singular vectors one colour each, the rest together. A bar that is mostly the first
    colour is a target IFV recovers. Returns the figure; saves it to `path` when given."""
    import matplotlib.pyplot as plt

    c2 = np.asarray(torch.as_tensor(coefficients).double() ** 2)
    n = c2.shape[0]
    parts = [c2[:, i] for i in range(components)] + [c2[:, components:].sum(axis=1)]
    labels = [f"u{i + 1}" for i in range(components)] + ["rest"]
    fig, ax = plt.subplots(figsize=(max(4, 0.4 * n), 3))
    bottom = np.zeros(n)
    for part, label in zip(parts, labels):
        ax.bar(np.arange(n), part, bottom=bottom, label=label)
        bottom += part
    ax.set_xlabel("sample")
    ax.set_ylabel("squared coefficient of target")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7, ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, 1.2))
    if path:
        save_figure(fig, path)
    return fig
