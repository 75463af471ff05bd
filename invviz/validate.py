"""Checks of plain settings shared by every layer above (a typed error that says what was expected), kept below all
their users: optimizers' rates, counts of steps, batches and the like."""

from __future__ import annotations

import math
import numbers

from .errors import SettingError


def check_positive_int(value: object, name: str, *, allow_none: bool = False) -> None:
    """A typed error unless `value` is an int >= 1 (or None where allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise SettingError(f"{name} must be a whole number >= 1{' or None' if allow_none else ''}; got {value!r}")


def check_learning_rate(lr: object, name: str = "lr") -> float:
    """A typed error unless `lr` is a finite number > 0; returns it as a float."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(float(lr)) or lr <= 0:
        raise SettingError(f"{name} must be a finite number > 0 (e.g. 1e-4); got {lr!r}")
    return float(lr)


__all__ = ["check_positive_int", "check_learning_rate"]
