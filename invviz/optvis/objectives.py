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

import inspect
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import ObjectiveError, UnitIndexError

IMAGE = "@image"  # key of the untransformed image in the mapping objectives receive
Features = Mapping[str, torch.Tensor]
UnitSpec = int | Sequence[int] | torch.Tensor


class Objective:
    """Base class: subclasses set `layers` and implement :meth:`value` returning `(B,)`.

    Objectives compose with numbers and with each other: `a + b`, `a - 2`, `3 * a`, `a / 2`, `-a`, `a * b`
    (a product, per batch element), `a ** 2`, `sum([...])`.
    """

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

    def constant(self) -> float:
        return 0.0

    def __add__(self, other: object) -> Objective:
        if _is_number(other):
            return self if other == 0 else Sum(self.terms(), self.constant() + float(other))
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum(self.terms() + other.terms(), self.constant() + other.constant())

    def __radd__(self, other: object) -> Objective:  # sum([...]) starts from 0
        return self.__add__(other)

    def __neg__(self) -> Objective:
        return Sum([(-w, t) for w, t in self.terms()], -self.constant())

    def __sub__(self, other: object) -> Objective:
        if not (_is_number(other) or isinstance(other, Objective)):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other: object) -> Objective:
        if not _is_number(other):
            return NotImplemented
        return (-self) + other

    def __mul__(self, k: object) -> Objective:
        if isinstance(k, Objective):
            return Product(self, k)
        if not _is_number(k):
            return NotImplemented
        return Sum([(float(k) * w, t) for w, t in self.terms()], float(k) * self.constant())

    __rmul__ = __mul__

    def __truediv__(self, k: object) -> Objective:
        if not _is_number(k):
            return NotImplemented
        if k == 0:
            raise ObjectiveError(f"cannot divide the objective {self!r} by zero")
        return self * (1.0 / float(k))

    def __pow__(self, p: object) -> Objective:
        if not _is_number(p):
            return NotImplemented
        return Power(self, float(p))

    def __repr__(self) -> str:
        return self.name


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _batch_of(feats: Features, layers: Sequence[str]) -> int:
    for k in layers:
        if k in feats:
            return int(feats[k].shape[0])
    return int(next(iter(feats.values())).shape[0])


class Sum(Objective):
    """A weighted sum of objectives plus a constant, kept as a flat list of `(weight, term)` pairs."""

    def __init__(self, terms: Iterable[tuple[float, Objective]], constant: float = 0.0) -> None:
        self._terms = list(terms)
        self._constant = float(constant)
        self.layers = tuple(dict.fromkeys(layer for _, t in self._terms for layer in t.layers))

    def terms(self) -> list[tuple[float, Objective]]:
        return list(self._terms)

    def constant(self) -> float:
        return self._constant

    def value(self, feats: Features) -> torch.Tensor:
        total: torch.Tensor | None = None
        for weight, term in self._terms:
            v = term.value(feats)
            v = v if weight == 1.0 else weight * v
            total = v if total is None else total + v
        if total is None:
            raise ObjectiveError("an empty sum of objectives has no value")
        return total + self._constant if self._constant else total

    @property
    def name(self) -> str:  # type: ignore[override]
        shown = " + ".join(f"{w:g} * {t!r}" if w != 1.0 else repr(t) for w, t in self._terms[:4])
        shown += f" + ... ({len(self._terms)} terms)" if len(self._terms) > 4 else ""
        return shown + (f" + {self._constant:g}" if self._constant else "")


class Product(Objective):
    """The product of two objectives, per batch element."""

    def __init__(self, a: Objective, b: Objective) -> None:
        self.a, self.b = a, b
        self.layers = tuple(dict.fromkeys((*a.layers, *b.layers)))
        self.name = f"({a!r}) * ({b!r})"

    def value(self, feats: Features) -> torch.Tensor:
        return self.a.value(feats) * self.b.value(feats)


class Power(Objective):
    """An objective raised to a power, per batch element (`torch.pow`; a fractional power of a negative value is
    NaN, which the render loop reports)."""

    def __init__(self, base: Objective, p: float) -> None:
        self.base, self.p = base, p
        self.layers = base.layers
        self.name = f"({base!r}) ** {p:g}"

    def value(self, feats: Features) -> torch.Tensor:
        return self.base.value(feats) ** self.p


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


class Direction(Objective):
    """Lucid's `direction`: per position `<v, d> * max(0.1, cos(v, d)) ** cossim_pow`, mean over positions.

    `cos` uses `1e-4` guards on both norms, as Lucid's `_dot_cossim`; `cossim_pow=0` is the plain dot product.
    `vector` is `(C,)`, or `(B, C)` for one direction per batch element. (Grad-IFV's direction on an aggregated
    response is :func:`invviz.ifv.aggregated_direction`.)
    """

    def __init__(self, layer: str, vector: torch.Tensor | Sequence[float], cossim_pow: float = 0.0,
                 batch: int | None = None) -> None:
        self.layers = (layer,)
        self.vector = _direction_rows(vector)  # (1 or B, C)
        if cossim_pow < 0:
            raise ObjectiveError(f"cossim_pow must be >= 0; got {cossim_pow}")
        self.cossim_pow = float(cossim_pow)
        self.batch = batch
        rows = f"{self.vector.shape[0]} x " if self.vector.shape[0] > 1 else ""
        self.name = f"direction({layer!r}, <{rows}{self.vector.shape[1]} values>, cossim_pow={cossim_pow:g})"

    def _vec(self, f: torch.Tensor) -> torch.Tensor:
        n, c = self.vector.shape
        if f.shape[1] != c:
            raise ObjectiveError(f"{self.name}: the vector has {c} values but layer {self.layers[0]!r} has"
                                 f" {f.shape[1]} channels")
        if n > 1 and n != f.shape[0]:
            raise ObjectiveError(f"{self.name}: {n} vectors (one per batch element) but the batch has {f.shape[0]}")
        return self.vector.to(device=f.device, dtype=f.dtype)[:, :, None, None]

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        return _per_element(dot_cossim(f, self._vec(f), self.cossim_pow).mean(dim=(1, 2)), self.batch)


def _direction_rows(vector: torch.Tensor | Sequence[float]) -> torch.Tensor:
    try:
        vec = torch.as_tensor(vector, dtype=torch.float32)
    except (TypeError, ValueError):
        raise ObjectiveError(f"a direction is a vector of numbers (C,) or (B, C); got {type(vector).__name__}") from None
    if vec.dim() == 0 or vec.dim() > 2 or vec.numel() == 0:
        raise ObjectiveError(f"a direction is a vector (C,), or one per batch element (B, C); got shape"
                             f" {tuple(vec.shape)}")
    if not bool(torch.isfinite(vec).all()) or float(vec.norm()) == 0:
        raise ObjectiveError("a direction must be finite and not all zeros")
    return vec.reshape(-1, vec.shape[-1]) if vec.dim() == 2 else vec.reshape(1, -1)


def dot_cossim(f: torch.Tensor, vec: torch.Tensor, cossim_pow: float, floor: float | None = 0.1,
               eps: float = 1e-4) -> torch.Tensor:
    """Lucid's `_dot_cossim` over the channel axis of `f (B, C, H, W)`: returns `(B, H, W)`.

    `floor=None, eps=0` gives Reinbold & Westermann 2020's `<f, d> cos(f, d)^p` where `cos > 0`, and the plain dot product where
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
    """A weighted group of channels (Lucid's neuron groups): `sum_c w_c * channel_c`, averaged over space, at one
    position (`x` the column, `y` the row; the centre where only one is given), or averaged over a list of
    `positions` `[(x, y), ...]`."""

    def __init__(self, layer: str, weights: Mapping[int, float] | torch.Tensor | Sequence[float],
                 x: int | None = None, y: int | None = None, batch: int | None = None,
                 positions: Sequence[tuple[int, int]] | None = None) -> None:
        if isinstance(weights, Mapping):
            idx = torch.tensor([int(k) for k in weights], dtype=torch.long)
            w = torch.tensor([float(v) for v in weights.values()])
        else:
            w = torch.as_tensor(weights, dtype=torch.float32).flatten()
            idx = torch.arange(w.numel())
        if idx.numel() == 0:
            raise ObjectiveError("units() needs at least one weighted channel")
        if positions is not None and (x is not None or y is not None):
            raise ObjectiveError("give either x/y or positions, not both")
        if positions is not None and not list(positions):
            raise ObjectiveError("positions must list at least one (x, y)")
        self.layers = (layer,)
        self.index, self.weights = idx, w
        self.x, self.y, self.batch = x, y, batch
        self.positions = None if positions is None else [(int(px), int(py)) for px, py in positions]
        where = f", {len(self.positions)} positions" if self.positions else ""
        self.name = f"units({layer!r}, {idx.numel()} channels{where})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        _check_units(self.index, f.shape[1], self.layers[0])
        sel = f[:, self.index.to(f.device)]  # (B, K, H, W)
        h, w = f.shape[2:]
        if self.positions is not None:
            for px, py in self.positions:
                if not (0 <= px < w and 0 <= py < h):
                    raise UnitIndexError(f"{self.name}: position (x={px}, y={py}) is outside the {w}x{h} grid")
            ys = torch.tensor([py for _, py in self.positions], device=f.device)
            xs = torch.tensor([px for px, _ in self.positions], device=f.device)
            sel = sel[:, :, ys, xs].mean(dim=2)  # (B, K)
        elif self.x is not None or self.y is not None:
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
        try:
            inspect.signature(fn).bind(None)
        except TypeError:
            raise ObjectiveError(
                f"an objective callable takes one argument — the layer's features (B, C, H, W), or a mapping of"
                f" layer name to features for several layers — and returns (B,); {getattr(fn, '__name__', fn)!r}"
                f" has the signature {inspect.signature(fn)}") from None
        except ValueError:  # builtins without a signature
            pass
        if isinstance(layers, str):
            layers = (layers,)
        if not layers or not all(isinstance(n, str) for n in layers):
            raise ObjectiveError(f"custom objectives name their layers with strings; got {layers!r}")
        self.layers = tuple(layers)
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


def _lucid_blur(x: torch.Tensor, w: int = 3) -> torch.Tensor:
    """Lucid's `_tf_blur`: a `w x w` box whose border taps weigh 0.5, per channel, "SAME" zero padding,
    normalized by the same blur of ones (so borders are not darkened)."""
    k = torch.full((w, w), 0.5, dtype=x.dtype, device=x.device)
    k[1:-1, 1:-1] = 1.0
    c = x.shape[1]
    weight = k.expand(c, 1, w, w)
    conv = F.conv2d(x, weight, padding=w // 2, groups=c)
    ones = F.conv2d(torch.ones_like(x[:1]), weight, padding=w // 2, groups=c)
    return conv / ones


class L1(Objective):
    """Lucid's `L1`: `sum |layer - constant|` per batch element (of the image by default); a penalty, add it with a
    negative weight."""

    def __init__(self, layer: str = IMAGE, constant: float = 0.0, batch: int | None = None) -> None:
        self.layers, self.constant_, self.batch = (layer,), float(constant), batch
        self.name = f"l1({layer!r})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        return _per_element((f - self.constant_).abs().flatten(1).sum(1), self.batch)


class L2(Objective):
    """Lucid's `L2`: `sqrt(epsilon + sum (layer - constant)^2)` per batch element; a penalty."""

    def __init__(self, layer: str = IMAGE, constant: float = 0.0, epsilon: float = 1e-6,
                 batch: int | None = None) -> None:
        self.layers, self.constant_, self.epsilon, self.batch = (layer,), float(constant), float(epsilon), batch
        self.name = f"l2({layer!r})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        return _per_element((self.epsilon + ((f - self.constant_) ** 2).flatten(1).sum(1)).sqrt(), self.batch)


class BlurInputEachStep(Objective):
    """Lucid's `blur_input_each_step`: `0.5 * sum (x - stop_gradient(blur(x)))^2` of the image; maximizing
    `-k` times it moves the image towards its blur by a fraction of `k` each step (Nguyen et al. 2015)."""

    layers = (IMAGE,)
    name = "blur_input_each_step()"

    def value(self, feats: Features) -> torch.Tensor:
        x = feats[IMAGE]
        with torch.no_grad():
            blurred = _lucid_blur(x, 3)
        return 0.5 * ((x - blurred) ** 2).flatten(1).sum(1)


class ChannelInterpolate(Objective):
    """Lucid's `channel_interpolate`: batch element `n` of `N` maximizes `(1 - n/(N-1))` channel 1 plus
    `n/(N-1)` channel 2, so the batch morphs from one unit into the other."""

    def __init__(self, layer1: str, unit1: int, layer2: str, unit2: int) -> None:
        self.layers = tuple(dict.fromkeys((layer1, layer2)))
        self.a, self.b = Channel(layer1, unit1), Channel(layer2, unit2)
        self.name = f"channel_interpolate({layer1!r}, {unit1}, {layer2!r}, {unit2})"

    def value(self, feats: Features) -> torch.Tensor:
        a, b = self.a.value(feats), self.b.value(feats)  # (B,)
        n = a.shape[0]
        w = torch.arange(n, dtype=a.dtype, device=a.device) / max(1, n - 1)
        return (1 - w) * a + w * b


class Alignment(Objective):
    """Lucid's `alignment`: minus the mean squared feature difference of batch neighbours 1..4 apart, each
    distance weighted `decay_ratio ** -d`; each pair's term is shared by its two elements."""

    def __init__(self, layer: str, decay_ratio: float = 2.0) -> None:
        self.layers, self.decay_ratio = (layer,), float(decay_ratio)
        self.name = f"alignment({layer!r}, decay_ratio={decay_ratio:g})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        n = f.shape[0]
        out = torch.zeros(n, dtype=f.dtype, device=f.device)
        for d in (1, 2, 3, 4):
            if n <= d:
                break
            diff = ((f[:-d] - f[d:]) ** 2).flatten(1).mean(1) / self.decay_ratio ** d  # (n - d,)
            out = out.index_add(0, torch.arange(n - d, device=f.device), -0.5 * diff)
            out = out.index_add(0, torch.arange(d, n, device=f.device), -0.5 * diff)
        return out


class PenalizeBoundaryComplexity(Objective):
    """Lucid's `penalize_boundary_complexity`: minus `sum mask * ((blur5(x) - x)^2 + 0.8 (x - C)^2)` of the
    image, with `mask` the border of width `w` (or a given mask `(H, W)` / `(B, C, H, W)`): plain, grey borders."""

    layers = (IMAGE,)

    def __init__(self, w: int = 20, mask: torch.Tensor | None = None, C: float = 0.5) -> None:
        if mask is None and (not isinstance(w, int) or w < 1):
            raise ObjectiveError(f"the border width w must be an int >= 1; got {w!r}")
        self.w, self.mask, self.C = w, mask, float(C)
        self.name = f"penalize_boundary_complexity(w={w})"

    def value(self, feats: Features) -> torch.Tensor:
        x = feats[IMAGE]
        if self.mask is None:
            mask = torch.ones_like(x)
            mask[:, :, self.w:-self.w, self.w:-self.w] = 0
        else:
            mask = torch.as_tensor(self.mask, dtype=x.dtype, device=x.device).expand_as(x)
        diffs = (_lucid_blur(x, 5) - x) ** 2 + 0.8 * (x - self.C) ** 2
        return -(diffs * mask).flatten(1).sum(1)


class WhitenedDirection(Objective):
    """Lucid's whitened direction (the activation-atlas notebooks' `direction_neuron_cossim_S`): at position
    (`x`, `y`) (the centre by default), `dot * max(0.1, cos) ** cossim_pow` with `v' = S v`, `dot = mean_c(a_c
    v'_c)` and `cos = dot / (1e-4 + |a|)`; `S` a whitening matrix `(C, C)`, e.g. :func:`whitening` of activations
    on data. With `x = y = None` and `mean_over_space=True` the value is averaged over all positions instead."""

    def __init__(self, layer: str, vector: torch.Tensor | Sequence[float], whitening: torch.Tensor | None = None,
                 cossim_pow: float = 1.0, x: int | None = None, y: int | None = None, batch: int | None = None,
                 mean_over_space: bool = False) -> None:
        vec = _direction_rows(vector)
        if vec.shape[0] != 1:
            raise ObjectiveError("a whitened direction takes one vector (C,)")
        if whitening is not None:
            whitening = torch.as_tensor(whitening, dtype=torch.float32)
            if whitening.shape != (vec.shape[1], vec.shape[1]):
                raise ObjectiveError(f"the whitening matrix must be ({vec.shape[1]}, {vec.shape[1]}); got"
                                     f" {tuple(whitening.shape)}")
            vec = vec @ whitening  # Lucid: matmul(vec[None], S)
        self.layers, self.vector, self.cossim_pow = (layer,), vec[0], float(cossim_pow)
        self.x, self.y, self.batch, self.mean_over_space = x, y, batch, mean_over_space
        self.name = f"whitened_direction({layer!r}, <{vec.shape[1]} values>, cossim_pow={cossim_pow:g})"

    def value(self, feats: Features) -> torch.Tensor:
        f = _features(feats, self.layers[0], self.name)
        if f.shape[1] != self.vector.numel():
            raise ObjectiveError(f"{self.name}: the vector has {self.vector.numel()} values but the layer has"
                                 f" {f.shape[1]} channels")
        v = self.vector.to(f.device, f.dtype)
        h, w = f.shape[2:]
        if self.mean_over_space and self.x is None and self.y is None:
            acts = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])  # (B*H*W, C)
        else:
            acts = f[:, :, h // 2 if self.y is None else self.y, w // 2 if self.x is None else self.x]  # (B, C)
        dot = (acts * v).mean(1)
        cos = (dot / (1e-4 + acts.norm(dim=1))).clamp(min=0.1)
        out = dot * cos ** self.cossim_pow
        if out.shape[0] != f.shape[0]:
            out = out.view(f.shape[0], -1).mean(1)
        return _per_element(out, self.batch)


def whitening(activations: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """The whitening matrix `S = (Cov + eps * mean(diag Cov) I)^-1` `(C, C)` of activations `(N, C)` (or features
    `(B, C, H, W)`, every position a sample), as Lucid's activation-atlas notebooks whiten directions."""
    a = torch.as_tensor(activations).double()
    if a.dim() == 4:
        a = a.permute(0, 2, 3, 1).reshape(-1, a.shape[1])
    if a.dim() != 2 or a.shape[0] < 2:
        raise ObjectiveError(f"whitening needs activations (N >= 2, C) or features (B, C, H, W); got"
                             f" {tuple(a.shape)}")
    cov = a.T @ a / a.shape[0]
    cov = cov + eps * cov.diagonal().mean().clamp(min=1e-12) * torch.eye(cov.shape[0], dtype=cov.dtype)
    return torch.linalg.inv(cov).float()


# -- short constructors, Lucid's vocabulary -------------------------------------------------------------------
def channel(layer: str, unit: UnitSpec, batch: int | None = None) -> Channel:
    """Mean of channel `unit` of `layer` (a sequence: unit `i` for batch element `i`)."""
    return Channel(layer, unit, batch)


def neuron(layer: str, unit: UnitSpec, x: int | None = None, y: int | None = None, batch: int | None = None) -> Neuron:
    """Channel `unit` at column `x`, row `y` (the centre by default)."""
    return Neuron(layer, unit, x, y, batch)


def direction(layer: str, vector: torch.Tensor | Sequence[float], cossim_pow: float = 0.0,
              batch: int | None = None) -> Direction:
    """Lucid's direction objective with cosine power `cossim_pow`. `vector` is `(C,)`, or `(B, C)` for one target
    per batch element (rendered together, each image optimized for its own row)."""
    return Direction(layer, vector, cossim_pow, batch)


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
          y: int | None = None, batch: int | None = None, positions: Sequence[tuple[int, int]] | None = None
          ) -> Units:
    """A weighted neuron group, averaged over space, at one position, or over a list of positions."""
    return Units(layer, weights, x, y, batch, positions)


def custom(layers: str | Sequence[str], fn: Callable[..., torch.Tensor], name: str | None = None) -> Custom:
    """Wrap a callable on features as an objective."""
    return Custom(layers, fn, name)


def total_variation() -> TotalVariation:
    """Negative total variation of the image."""
    return TotalVariation()


def l1(layer: str = IMAGE, constant: float = 0.0, batch: int | None = None) -> L1:
    """Lucid's L1 penalty `sum |layer - constant|` (the image by default)."""
    return L1(layer, constant, batch)


def l2(layer: str = IMAGE, constant: float = 0.0, epsilon: float = 1e-6, batch: int | None = None) -> L2:
    """Lucid's L2 penalty `sqrt(epsilon + sum (layer - constant)^2)`."""
    return L2(layer, constant, epsilon, batch)


def blur_input_each_step() -> BlurInputEachStep:
    """Lucid's blur term; render `objective - k * blur_input_each_step()` to blur the image a little every step."""
    return BlurInputEachStep()


def channel_interpolate(layer1: str, unit1: int, layer2: str, unit2: int) -> ChannelInterpolate:
    """Morph across the batch from `layer1:unit1` (element 0) to `layer2:unit2` (the last element)."""
    return ChannelInterpolate(layer1, unit1, layer2, unit2)


def alignment(layer: str, decay_ratio: float = 2.0) -> Alignment:
    """Keep neighbouring batch elements alike at `layer` (use with :func:`channel_interpolate`)."""
    return Alignment(layer, decay_ratio)


def penalize_boundary_complexity(w: int = 20, mask: torch.Tensor | None = None, C: float = 0.5
                                 ) -> PenalizeBoundaryComplexity:
    """Plain borders of colour `C` (Lucid's); add with a positive weight (the value is already negative)."""
    return PenalizeBoundaryComplexity(w, mask, C)


def whitened_direction(layer: str, vector: torch.Tensor | Sequence[float], whitening: torch.Tensor | None = None,
                       cossim_pow: float = 1.0, x: int | None = None, y: int | None = None,
                       batch: int | None = None, mean_over_space: bool = False) -> WhitenedDirection:
    """Lucid's whitened cosine direction at one position (see :class:`WhitenedDirection`)."""
    return WhitenedDirection(layer, vector, whitening, cossim_pow, x, y, batch, mean_over_space)


def as_objective(objective: object, layer: str | None = None) -> Objective:
    """Turn what a user passed to `visualize` into an :class:`Objective`.

    Accepts an `Objective`; an int (channel of `layer`); a sequence of ints (one channel per batch element);
    a callable on the layer's features `(B, C, H, W)`; Lucid's string `"layer:n"`.
    """
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str) and ":" in objective:  # Lucid's "layer:n"
        name, _, unit = objective.rpartition(":")
        if unit.strip().isdigit():
            return channel(name.strip(), int(unit))
    if layer is None:
        raise ObjectiveError(f"objective {objective!r} needs a layer; pass a layer name, or an Objective object")
    if not isinstance(layer, str):
        from ..errors import LayerNotFoundError

        raise LayerNotFoundError(f"a layer is named by a string like 'layer3' or 'blocks.4' (see"
                                 f" invviz.list_layers(model)); got {layer!r} ({type(layer).__name__})")
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
