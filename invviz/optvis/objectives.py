"""Objectives: small objects that declare the layers they read and compose with `+`, `-`, `*`, `/`.

An objective maps the captured features of a batch (`{layer: (B, C, H, W)}`, see
:class:`invviz.models.Capture`) to one value per batch element, shape `(B,)`. Rendering *maximizes* the sum of
those values. Sums are kept flat (a list of weighted terms), so `sum(thousands of objectives)` needs no
recursion. The key :data:`IMAGE` holds the untransformed image `(B, 3, H, W)` for image-space terms.

Example:
    >>> obj = channel("layer3", 0) - 0.1 * deepdream("layer2") + 2 * neuron("layer4", 3)
    >>> obj.layers
    ('layer3', 'layer2', 'layer4')
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, Union

import torch
import torch.nn.functional as F

from ..errors import ObjectiveError, UnitIndexError

IMAGE = "@image"  # key of the untransformed image in the mapping objectives receive
Features = Mapping[str, torch.Tensor]
UnitSpec = Union[int, Sequence[int], torch.Tensor]


class Objective:
    """Base class: subclasses set `layers` and implement :meth:`value` returning `(B,)`."""

    layers: tuple[str, ...] = ()
    name: str = "objective"

    def value(self, feats: Features) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, feats: Features) -> torch.Tensor:
        """Evaluate on captured features; returns one value per batch element `(B,)`."""
        return self.value(feats)

    # -- algebra (flat sums, no recursion) -----------------------------------------------------------------
    def terms(self) -> list[tuple[float, Objective]]:
        return [(1.0, self)]

    def __add__(self, other: object) -> Objective:
        if isinstance(other, numbers.Number) and other == 0:
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum(self.terms() + other.terms())

    def __radd__(self, other: object) -> Objective:  # sum([...]) starts from 0
        if isinstance(other, numbers.Number) and other == 0:
            return self
        return NotImplemented

    def __neg__(self) -> Objective:
        return Sum([(-w, t) for w, t in self.terms()])

    def __sub__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __mul__(self, k: object) -> Objective:
        if not isinstance(k, numbers.Real) or isinstance(k, bool):
            return NotImplemented
        return Sum([(float(k) * w, t) for w, t in self.terms()])

    __rmul__ = __mul__

    def __truediv__(self, k: object) -> Objective:
        if not isinstance(k, numbers.Real) or isinstance(k, bool) or k == 0:
            return NotImplemented
        return self * (1.0 / float(k))

    def __repr__(self) -> str:
        return self.name


class Sum(Objective):
    """A weighted sum of objectives, kept as a flat list of `(weight, term)` pairs."""

    def __init__(self, terms: Iterable[tuple[float, Objective]]) -> None:
        self._terms = list(terms)
        self.layers = tuple(dict.fromkeys(layer for _, t in self._terms for layer in t.layers))

    def terms(self) -> list[tuple[float, Objective]]:
        return list(self._terms)

    def value(self, feats: Features) -> torch.Tensor:
        total: torch.Tensor | None = None
        for weight, term in self._terms:
            v = term.value(feats)
            v = v if weight == 1.0 else weight * v
            total = v if total is None else total + v
        if total is None:
            raise ObjectiveError("an empty sum of objectives has no value")
        return total

    @property
    def name(self) -> str:  # type: ignore[override]
        shown = " + ".join(f"{w:g} * {t!r}" if w != 1.0 else repr(t) for w, t in self._terms[:4])
        return shown + (f" + ... ({len(self._terms)} terms)" if len(self._terms) > 4 else "")


def _features(feats: Features, layer: str, who: str) -> torch.Tensor:
    try:
        return feats[layer]
    except KeyError:
        raise ObjectiveError(f"{who} needs layer {layer!r}, which was not captured") from None


def _check_units(units: torch.Tensor | int, channels: int, layer: str) -> None:
    top = int(units) if isinstance(units, int) else int(units.max())
    low = int(units) if isinstance(units, int) else int(units.min())
    if top >= channels or low < 0:
        bad = top if top >= channels else low
        raise UnitIndexError(f"layer {layer!r} has {channels} channels (0..{channels - 1}); got unit {bad}")


def _per_element(x: torch.Tensor, batch: int | None) -> torch.Tensor:
    """Values `(B,)` from `x (B,)`, keeping only element `batch` when one is given."""
    if batch is None:
        return x
    if not -x.shape[0] <= batch < x.shape[0]:
        raise ObjectiveError(f"objective targets batch element {batch}, but the batch has {x.shape[0]}")
    mask = torch.zeros_like(x)
    mask[batch] = 1.0
    return x * mask


def _units_tensor(units: UnitSpec) -> int | torch.Tensor:
    if isinstance(units, bool):
        raise ObjectiveError(f"a unit is a channel index (int); got {units!r}")
    if isinstance(units, numbers.Integral):
        return int(units)
    t = torch.as_tensor(units)
    if t.dim() != 1 or t.numel() == 0 or t.dtype.is_floating_point:
        raise ObjectiveError(f"units must be an int or a non-empty sequence of ints (one per batch element); got {units!r}")
    return t.long()


class Channel(Objective):
    """Mean activation of one channel over space; a sequence of units puts unit `i` on batch element `i`."""

    def __init__(self, layer: str, unit: UnitSpec, batch: int | None = None) -> None:
        self.layers = (layer,)
        self.unit = _units_tensor(unit)
        self.batch = batch
        self.name = f"channel({layer!r}, {unit if isinstance(self.unit, int) else self.unit.tolist()})"

    def _pick(self, f: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, H, W)
        _check_units(self.unit, f.shape[1], self.layers[0])
        if isinstance(self.unit, int):
            return f[:, self.unit]
        if self.unit.numel() != f.shape[0]:
            raise ObjectiveError(
                f"{self.name} gives {self.unit.numel()} units for a batch of {f.shape[0]}; render with batch="
                f"{self.unit.numel()} (one unit per batch element)"
            )
        return f[torch.arange(f.shape[0], device=f.device), self.unit.to(f.device)]

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        return _per_element(self._pick(f).mean(dim=(1, 2)), self.batch)


class Neuron(Channel):
    """One channel at one spatial position: `x` is the column, `y` the row (the centre by default)."""

    def __init__(self, layer: str, unit: UnitSpec, x: int | None = None, y: int | None = None,
                 batch: int | None = None) -> None:
        super().__init__(layer, unit, batch)
        self.x, self.y = x, y
        self.name = self.name.replace("channel(", "neuron(", 1)[:-1] + (f", x={x}, y={y})" if x is not None or y is not None else ")")

    def value(self, feats: Features) -> torch.Tensor:
        f = self._pick(_features(feats, self.layers[0], self.name))  # (B, H, W)
        h, w = f.shape[1:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        if not (0 <= y < h and 0 <= x < w):
            raise UnitIndexError(f"{self.name}: position (x={x}, y={y}) is outside the layer's {w}x{h} grid")
        return _per_element(f[:, y, x], self.batch)


Aggregation = Literal["maxpool_mean", "mean", "pick"]
AGG_POOL_KERNEL, AGG_POOL_STRIDE = 3, 1  # the seed's max-pool before the mean: 3x3, stride 1, no padding


def aggregate(feats: torch.Tensor, method: Aggregation = "maxpool_mean", *, position: tuple[int, int] | None = None,
              kernel: int = AGG_POOL_KERNEL, stride: int = AGG_POOL_STRIDE) -> torch.Tensor:
    """Aggregate features `(B, C, H, W)` into one response per channel `(B, C)`.

    `"maxpool_mean"`: max-pool (kernel 3, stride 1 by default; a grid smaller than the kernel is pooled whole)
    then the spatial mean (seed 001, sec. 2.3: breaks the linearity that makes plain means of convolution outputs
    degenerate); `"mean"`: the spatial mean; `"pick"`: the value at `position` (row, column; the centre by default).
    """
    if method == "mean":
        return feats.mean(dim=(2, 3))
    if method == "maxpool_mean":
        h, w = feats.shape[2:]
        k = min(kernel, h, w)
        return F.max_pool2d(feats, k, stride=stride).mean(dim=(2, 3))
    if method == "pick":
        h, w = feats.shape[2:]
        y, x = position if position is not None else (h // 2, w // 2)
        return feats[:, :, y, x]
    raise ObjectiveError(f"unknown aggregation {method!r}; use 'maxpool_mean', 'mean' or 'pick'")


class Direction(Objective):
    """Lucid's `direction`: per position `<v, d> * max(0.1, cos(v, d)) ** cossim_pow`, mean over positions.

    `cos` uses `1e-4` guards on both norms, as Lucid's `_dot_cossim`; `cossim_pow=0` is the plain dot product.
    With `aggregation` (`"maxpool_mean"`, `"mean"`, `"pick"`), the features are first aggregated into one
    response `v (B, C)` and the objective is `<v, d> * cos(v, d) ** cossim_pow` on it (seed 001's objective, what
    Grad-IFV inverts; no 0.1 floor; the plain dot product where `cos <= 0`, see :func:`dot_cossim`).
    """

    def __init__(self, layer: str, vector: torch.Tensor | Sequence[float], cossim_pow: float = 0.0,
                 batch: int | None = None, aggregation: Aggregation | None = None,
                 position: tuple[int, int] | None = None) -> None:
        vec = torch.as_tensor(vector, dtype=torch.float32)
        if vec.dim() > 2 or vec.numel() == 0:
            raise ObjectiveError(f"a direction is a vector (C,), or one per batch element (B, C); got shape"
                                 f" {tuple(vec.shape)}")
        if cossim_pow < 0:
            raise ObjectiveError(f"cossim_pow must be >= 0; got {cossim_pow}")
        self.layers = (layer,)
        self.vector = vec.reshape(-1, vec.shape[-1]) if vec.dim() == 2 else vec.reshape(1, -1)  # (1 or B, C)
        self.cossim_pow = float(cossim_pow)
        self.batch = batch
        self.aggregation = aggregation
        self.position = position
        agg = f", aggregation={aggregation!r}" if aggregation else ""
        rows = f"{self.vector.shape[0]} x " if self.vector.shape[0] > 1 else ""
        self.name = (f"direction({layer!r}, <{rows}{self.vector.shape[1]} values>, cossim_pow={cossim_pow:g}"
                     f"{agg})")

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        n, c = self.vector.shape
        if f.shape[1] != c:
            raise ObjectiveError(f"{self.name}: the vector has {c} values but layer {self.layers[0]!r} has"
                                 f" {f.shape[1]} channels")
        if n > 1 and n != f.shape[0]:
            raise ObjectiveError(f"{self.name}: {n} vectors (one per batch element) but the batch has {f.shape[0]}")
        vec = self.vector.to(device=f.device, dtype=f.dtype)[:, :, None, None]
        if self.aggregation is None:
            return _per_element(dot_cossim(f, vec, self.cossim_pow).mean(dim=(1, 2)), self.batch)
        v = aggregate(f, self.aggregation, position=self.position)[:, :, None, None]  # (B, C, 1, 1)
        return _per_element(dot_cossim(v, vec, self.cossim_pow, floor=None, eps=0.0)[:, 0, 0], self.batch)


def dot_cossim(f: torch.Tensor, vec: torch.Tensor, cossim_pow: float, floor: float | None = 0.1,
               eps: float = 1e-4) -> torch.Tensor:
    """Lucid's `_dot_cossim` over the channel axis of `f (B, C, H, W)`: returns `(B, H, W)`.

    `floor=None, eps=0` gives seed 001's `<f, d> cos(f, d)^p` where `cos > 0`, and the plain dot product where
    `cos <= 0` (continuous, as both are 0 at `cos = 0`). Without that, an odd `p` makes the objective even in `d`
    (`<f, d>^2 / |f|` for p = 1): an image whose response points away from `d` would be an optimum too, and IFV's
    sign rule (`<v, d> > 0` at the optimum) would return `-d`. At every optimum with `cos > 0` the two agree.
    """
    dot = (f * vec).sum(dim=1)
    if cossim_pow == 0:
        return dot
    cos = dot / (eps + f.norm(dim=1)) / (eps + vec.norm(dim=1))
    if floor is None:
        return torch.where(cos > 0, dot * cos.clamp(min=0) ** cossim_pow, dot)
    return dot * cos.clamp(min=floor) ** cossim_pow


class DeepDream(Objective):
    """Mean of squared activations of a layer."""

    def __init__(self, layer: str, batch: int | None = None) -> None:
        self.layers = (layer,)
        self.batch = batch
        self.name = f"deepdream({layer!r})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        return _per_element((f ** 2).mean(dim=(1, 2, 3)), self.batch)


class Diversity(Objective):
    """Negative Gram-matrix cosine similarity across the batch (Lucid's `diversity`, sign flipped).

    Element `i` gets `-sum_{j != i} <G_i, G_j> / B` with `G` the L2-normalized Gram matrices, so the batch sum
    equals minus Lucid's value; add it with a positive weight to make the batch diverse.
    """

    def __init__(self, layer: str) -> None:
        self.layers = (layer,)
        self.name = f"diversity({layer!r})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        b, c = f.shape[:2]
        flat = f.reshape(b, c, -1)  # (B, C, HW)
        grams = flat @ flat.transpose(1, 2)  # (B, C, C)
        grams = grams / grams.flatten(1).norm(dim=1).clamp(min=1e-10).view(b, 1, 1)
        sims = grams.flatten(1) @ grams.flatten(1).T  # (B, B)
        off = sims.sum(dim=1) - sims.diagonal()
        return -off / b


class Units(Objective):
    """A weighted group of channels (Lucid's neuron groups): `sum_c w_c * channel_c`, at one position or averaged."""

    def __init__(self, layer: str, weights: Mapping[int, float] | torch.Tensor | Sequence[float],
                 x: int | None = None, y: int | None = None, batch: int | None = None) -> None:
        if isinstance(weights, Mapping):
            idx = torch.tensor([int(k) for k in weights], dtype=torch.long)
            w = torch.tensor([float(v) for v in weights.values()])
        else:
            w = torch.as_tensor(weights, dtype=torch.float32).flatten()
            idx = torch.arange(w.numel())
        if idx.numel() == 0:
            raise ObjectiveError("units() needs at least one weighted channel")
        self.layers = (layer,)
        self.index, self.weights = idx, w
        self.x, self.y, self.batch = x, y, batch
        self.name = f"units({layer!r}, {idx.numel()} channels)"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        _check_units(self.index, f.shape[1], self.layers[0])
        sel = f[:, self.index.to(f.device)]  # (B, K, H, W)
        if self.x is not None or self.y is not None:
            h, w = f.shape[2:]
            sel = sel[:, :, h // 2 if self.y is None else self.y, w // 2 if self.x is None else self.x]
        else:
            sel = sel.mean(dim=(2, 3))
        return _per_element(sel @ self.weights.to(f.device, f.dtype), self.batch)


class Custom(Objective):
    """Any callable on features: `fn(features) -> (B,)` or a scalar (spread evenly over the batch).

    With one layer `fn` receives that layer's tensor `(B, C, H, W)`; with several, the mapping.
    """

    def __init__(self, layers: str | Sequence[str], fn: Callable[..., torch.Tensor], name: str | None = None) -> None:
        if not callable(fn):
            raise ObjectiveError(f"Custom objective needs a callable; got {type(fn).__name__}")
        self.layers = (layers,) if isinstance(layers, str) else tuple(layers)
        self.fn = fn
        self.name = name or f"custom({getattr(fn, '__name__', 'fn')}, {list(self.layers)})"

    def value(self, feats: Features) -> torch.Tensor:
        arg = feats[self.layers[0]] if len(self.layers) == 1 else {k: feats[k] for k in self.layers}
        v = self.fn(arg)
        if not isinstance(v, torch.Tensor):
            raise ObjectiveError(f"{self.name} returned {type(v).__name__}; it must return a tensor (B,) or a scalar")
        b = next(iter(feats[k] for k in self.layers)).shape[0]
        if v.dim() == 0:
            return v.expand(b) / b
        if v.shape != (b,):
            raise ObjectiveError(f"{self.name} returned shape {tuple(v.shape)}; expected ({b},) or a scalar")
        return v


class TotalVariation(Objective):
    """Negative total variation of the untransformed image (a smoothness prior; add with a small weight)."""

    layers = (IMAGE,)
    name = "total_variation()"

    def value(self, feats: Features) -> torch.Tensor:
        img = feats[IMAGE]
        dy = (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
        dx = (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
        return -(dx + dy)


# -- short constructors, Lucid's vocabulary -------------------------------------------------------------------
def channel(layer: str, unit: UnitSpec, batch: int | None = None) -> Channel:
    """Mean of channel `unit` of `layer` (a sequence: unit `i` for batch element `i`)."""
    return Channel(layer, unit, batch)


def neuron(layer: str, unit: UnitSpec, x: int | None = None, y: int | None = None, batch: int | None = None) -> Neuron:
    """Channel `unit` at column `x`, row `y` (the centre by default)."""
    return Neuron(layer, unit, x, y, batch)


def direction(layer: str, vector: torch.Tensor | Sequence[float], cossim_pow: float = 0.0,
              batch: int | None = None, aggregation: Aggregation | None = None,
              position: tuple[int, int] | None = None) -> Direction:
    """Lucid's direction objective with cosine power `cossim_pow` (on an aggregated response with `aggregation`;
    `position` is the picked (row, column) for `aggregation="pick"`). `vector` is `(C,)`, or `(B, C)` for one target
    per batch element (rendered together, each image optimized for its own row)."""
    return Direction(layer, vector, cossim_pow, batch, aggregation, position)


def deepdream(layer: str, batch: int | None = None) -> DeepDream:
    """Mean squared activation of `layer`."""
    return DeepDream(layer, batch)


def class_logit(unit: UnitSpec, batch: int | None = None) -> Channel:
    """Pre-softmax logit of class `unit` (the model's output)."""
    obj = Channel("", unit, batch)
    obj.name = f"class_logit({unit})"
    return obj


def diversity(layer: str) -> Diversity:
    """Negative Gram similarity across the batch; e.g. `channel(l, 3) + 1e2 * diversity(l)`."""
    return Diversity(layer)


def units(layer: str, weights: Mapping[int, float] | torch.Tensor | Sequence[float], x: int | None = None,
          y: int | None = None, batch: int | None = None) -> Units:
    """A weighted neuron group."""
    return Units(layer, weights, x, y, batch)


def custom(layers: str | Sequence[str], fn: Callable[..., torch.Tensor], name: str | None = None) -> Custom:
    """Wrap a callable on features as an objective."""
    return Custom(layers, fn, name)


def total_variation() -> TotalVariation:
    """Negative total variation of the image."""
    return TotalVariation()


def as_objective(objective: object, layer: str | None = None) -> Objective:
    """Turn what a user passed to `visualize` into an :class:`Objective`.

    Accepts an `Objective`; an int (channel of `layer`); a sequence of ints (one channel per batch element);
    a callable on the layer's features `(B, C, H, W)`.
    """
    if isinstance(objective, Objective):
        return objective
    if layer is None:
        raise ObjectiveError(f"objective {objective!r} needs a layer; pass a layer name, or an Objective object")
    if isinstance(objective, numbers.Integral) and not isinstance(objective, bool):
        return channel(layer, int(objective))
    if isinstance(objective, (list, tuple, range)) and objective and all(
            isinstance(u, numbers.Integral) and not isinstance(u, bool) for u in objective):
        return channel(layer, list(objective))
    if callable(objective) and not isinstance(objective, type):
        return custom(layer, objective)
    raise ObjectiveError(
        f"cannot use {objective!r} ({type(objective).__name__}) as an objective; pass a channel index (int), a"
        " list of channel indices (one per batch element), an invviz.optvis objective (e.g."
        " channel(layer, 3) + diversity(layer)), or a callable taking the layer's features (B, C, H, W)"
    )
