"""Step-size schedules shared by the samplers and the training loops."""

from __future__ import annotations

import math


def linear(start: float, end: float, step: int, total: int) -> float:
    """`start` at step 0 falling (or rising) linearly to `end` at step `total - 1` (DGN-AM's rate)."""
    return start + (end - start) * step / max(1, total - 1)


def cosine(start: float, end: float, step: int, total: int) -> float:
    """Half a cosine from `start` at step 0 to `end` at step `total` (held at `end` after)."""
    t = min(max(step, 0), total) / max(1, total)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))


__all__ = ["linear", "cosine"]
