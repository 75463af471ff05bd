"""The one way invviz reaches inside a model: :class:`Capture`.

`Capture` hooks only the layers it is asked for, resolves dotted names with `get_submodule` (the names of
`model.named_modules()`, e.g. `"layer3"`, `"blocks.4"`, `"stages.1.blocks.0"`), clones what it keeps (an
in-place op later in the forward would overwrite it otherwise), notices a module object that runs more than
once in one forward, stops the forward once the last needed output exists (nothing past the deepest layer is
computed), brings every output into one feature layout `(B, C, H, W)`, and removes its hooks in `finally`.

Layer names may select one call of a reused module with `@k` (0-based), e.g. `"layer1.0.relu@1"`.
The empty name `""` is the model's output.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from ..errors import LayerNotFoundError, LayerReuseError, LayoutError

Layout = Literal["NCHW", "NHWC", "tokens", "vector"]
MAX_PREFIX_TOKENS = 16  # class, distillation and register tokens ahead of the patch tokens
_NCHW_MODULES = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveMaxPool2d, nn.GroupNorm, nn.InstanceNorm2d, nn.Upsample)
_LAST_DIM_MODULES = (nn.Linear, nn.LayerNorm)


class _StopForward(Exception):
    """Raised by a hook once every needed output exists; caught by :meth:`Capture.run`."""


@dataclasses.dataclass(frozen=True)
class LayerLayout:
    """How one layer's output maps onto feature channels.

    Attributes:
        kind: `"NCHW"` (convnets), `"NHWC"` (channels last, e.g. Swin stages), `"tokens"` (`(B, N, C)` with
            `prefix` leading class/register/distillation tokens and a `grid` of patch tokens), or `"vector"`
            (`(B, C)`, e.g. pooled features or logits).
        channels: number of feature channels.
        grid: spatial size `(H, W)` of the features (`(1, 1)` for vectors).
        prefix: tokens removed from the front of a token sequence.
    """

    kind: Layout
    channels: int
    grid: tuple[int, int]
    prefix: int = 0

    def to_features(self, out: torch.Tensor) -> torch.Tensor:
        """Bring a raw layer output into `(B, C, H, W)`."""
        if self.kind == "NCHW":
            return out
        if self.kind == "NHWC":
            return out.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            b, _, c = out.shape
            return out[:, self.prefix:].transpose(1, 2).reshape(b, c, *self.grid)  # (B, C, H, W)
        return out.reshape(out.shape[0], -1, 1, 1)  # (B, C, 1, 1)


def _parse(spec: str) -> tuple[str, int | None]:
    name, sep, call = spec.rpartition("@")
    if not sep:
        return spec, None
    if not call.isdigit():
        raise LayerNotFoundError(f"in layer {spec!r}, the call after '@' must be a whole number like 'layer1.0.relu@1'")
    return name, int(call)


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """`model.get_submodule(name)`, with an error that lists the closest layer names."""
    if not isinstance(name, str):
        raise LayerNotFoundError(f"a layer is named by a string like 'layer3' or 'blocks.4'; got {name!r}")
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, names, n=6, cutoff=0.5)
        dotted = name.replace("_", ".")
        if dotted != name and dotted in names:
            close = [dotted] + [c for c in close if c != dotted]
        hint = f"closest names: {', '.join(close)}" if close else f"some names: {', '.join(names[:8])}"
        raise LayerNotFoundError(
            f"{type(model).__name__} has no layer {name!r}; {hint}. invviz.list_layers(model) lists them all."
        ) from None


class Capture:
    """Context manager that records chosen layers' outputs, as features `(B, C, H, W)`.

    Args:
        model: any `nn.Module`.
        layers: layer names (`"layer3"`, `"blocks.4@1"` for the second call of a reused module, `""` for the
            model's output).
        clone: keep a clone of each output (safe against later in-place ops); False keeps the tensor itself.
        stop_early: stop the forward once every needed output exists.
        layouts: override the detected layout of some layers, e.g. `{"stages.1": "NHWC"}`.
        strict: raise for a module that runs more than once (or not at all) without a selected call; with
            False the first call is kept and `calls` reports the count (used by :func:`list_layers`).

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.resnet18().eval()
        >>> with Capture(net, ["layer2"]) as cap:
        ...     feats = cap.run(torch.rand(1, 3, 64, 64))
        >>> feats["layer2"].shape
        torch.Size([1, 128, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str],
        *,
        clone: bool = True,
        stop_early: bool = True,
        layouts: Mapping[str, Layout] | None = None,
        strict: bool = True,
    ) -> None:
        self.model = model
        self.specs = list(dict.fromkeys(layers))
        self.clone = clone
        self.stop_early = stop_early
        self.layout_overrides = dict(layouts or {})
        self.strict = strict
        self._targets: dict[str, tuple[nn.Module, int | None]] = {}
        for spec in self.specs:
            name, call = _parse(spec)
            self._targets[spec] = (resolve_layer(model, name), call)
        self._handles: list[Any] = []
        self._probed = False
        self.calls: dict[str, int] = {}  # calls per forward of each captured module (known after the first run)
        self.layouts: dict[str, LayerLayout] = {}
        self._grids: list[tuple[int, int]] = []
        self._outputs: dict[str, torch.Tensor] = {}
        self._count: dict[int, int] = {}
        self._probing = False

    # -- hooks ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Capture:
        try:
            by_module: dict[int, list[str]] = {}
            for spec, (module, _) in self._targets.items():
                by_module.setdefault(id(module), []).append(spec)
            for spec_list in by_module.values():
                module = self._targets[spec_list[0]][0]
                self._handles.append(module.register_forward_hook(self._make_hook(spec_list)))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this capture registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, specs: list[str]):
        key = id(self._targets[specs[0]][0])

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            n = self._count.get(key, 0)
            self._count[key] = n + 1
            tensor = _first_tensor(output)
            for spec in specs:
                call = self._targets[spec][1]
                if self._probing:
                    if n == 0 or call == n:
                        self._outputs[spec] = tensor.clone() if self.clone and tensor is not None else tensor
                elif tensor is not None and (call or 0) == n:
                    self._outputs[spec] = tensor.clone() if self.clone else tensor
            if (not self._probing and self.stop_early and len(self._outputs) == len(self.specs)
                    and "" not in self._targets):
                raise _StopForward

        return hook

    def _grid_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        """Record the spatial grid of every 4D output (patch embeddings, NHWC stages) to explain token counts."""
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            if _guess_kind(self.model, module, output) == "NHWC":
                self._grids.append((int(output.shape[1]), int(output.shape[2])))
            else:
                self._grids.append((int(output.shape[2]), int(output.shape[3])))

    # -- running -------------------------------------------------------------------------------------------
    def run(self, x: torch.Tensor | tuple[Any, ...], raw: bool = False) -> dict[str, torch.Tensor]:
        """Run `model(x)` (or `model(*x)` for a tuple) and return the captured outputs by layer name.

        The first run is a full forward that also counts module calls and detects layouts; later runs stop as
        soon as the deepest needed output exists.

        Returns:
            features `(B, C, H, W)` per layer, or the raw outputs when `raw=True`.

        Raises:
            LayerReuseError: a captured module ran more than once and no call was selected with `@k`.
            LayerNotFoundError: a captured layer did not run at all.
        """
        if not self._handles:
            raise RuntimeError("Capture.run() must be called inside `with Capture(...) as cap:`")
        self._outputs = {}
        self._count = {}
        if not self._probed:
            self._probe(x)
        else:
            try:
                self.model(*x) if isinstance(x, tuple) else self.model(x)
            except _StopForward:
                pass
            missing = [s for s in self.specs if s not in self._outputs]
            if missing:
                raise LayerNotFoundError(f"layer(s) {missing} did not run in this forward pass")
        outputs, self._outputs = self._outputs, {}
        if raw:
            return outputs
        return {spec: self.layouts[spec].to_features(out) for spec, out in outputs.items()}

    def _probe(self, x: torch.Tensor | tuple[Any, ...]) -> None:
        self._probing = True
        self._grids = []
        grid_handles = [m.register_forward_hook(self._grid_hook) for m in self.model.modules()]
        try:
            self.model(*x) if isinstance(x, tuple) else self.model(x)
        finally:
            for h in grid_handles:
                h.remove()
            self._probing = False
        for spec, (module, call) in self._targets.items():
            n = self._count.get(id(module), 0)
            self.calls[spec] = n
            if n == 0 and not self.strict:
                continue
            if n == 0:
                raise LayerNotFoundError(
                    f"layer {spec!r} ({type(module).__name__}) did not run in the forward pass, so it has no output"
                    " to capture; pick a module that the forward uses (invviz.list_layers shows which ran)"
                )
            if call is None and n > 1 and self.strict:
                raise LayerReuseError(
                    f"module {spec!r} ({type(module).__name__}) ran {n} times in one forward pass (one module"
                    f" object used in several places), so its output is ambiguous; select a call with"
                    f" '{spec}@0' ... '{spec}@{n - 1}'"
                )
            if call is not None and call >= n:
                raise LayerReuseError(f"module {_parse(spec)[0]!r} ran {n} time(s); call @{call} does not exist")
            if spec not in self._outputs or self._outputs[spec] is None:
                if not self.strict:
                    continue
                raise LayoutError(f"layer {spec!r} returned no tensor ({type(module).__name__})")
            try:
                self.layouts[spec] = self._layout(spec, module, self._outputs[spec])
            except LayoutError:
                if self.strict:
                    raise
        self._probed = True

    def _layout(self, spec: str, module: nn.Module, out: torch.Tensor) -> LayerLayout:
        kind = self.layout_overrides.get(spec) or _guess_kind(self.model, module, out)
        shape = tuple(out.shape)
        if kind == "vector":
            return LayerLayout("vector", int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1, (1, 1))
        if kind == "NCHW":
            return LayerLayout("NCHW", shape[1], (shape[2], shape[3]))
        if kind == "NHWC":
            return LayerLayout("NHWC", shape[3], (shape[1], shape[2]))
        if kind == "tokens":
            n = shape[1]
            prefix_hint = getattr(self.model, "num_prefix_tokens", None)
            candidates = [(n - h * w, (h, w)) for h, w in dict.fromkeys(self._grids)  # patch grids seen
                          if 0 <= n - h * w <= MAX_PREFIX_TOKENS]
            if isinstance(prefix_hint, int):
                candidates = [c for c in candidates if c[0] == prefix_hint] or candidates
            if not candidates:
                raise LayoutError(
                    f"layer {spec!r} outputs tokens {shape} but no patch-embedding grid explains {n} tokens; pass"
                    " layouts={name: 'vector'} to treat the output as a flat vector"
                )
            prefix, grid = min(candidates)
            return LayerLayout("tokens", shape[2], grid, prefix)
        raise LayoutError(f"layer {spec!r} has an unsupported layout {kind!r} for output shape {shape}")


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _guess_kind(model: nn.Module, module: nn.Module, out: torch.Tensor) -> Layout:
    if out.dim() == 2:
        return "vector"
    if out.dim() == 3:
        return "tokens"
    if out.dim() != 4:
        return "vector"
    if isinstance(module, _NCHW_MODULES):
        return "NCHW"
    if isinstance(module, _LAST_DIM_MODULES):
        return "NHWC"
    if getattr(model, "output_fmt", None) == "NHWC":
        return "NHWC"
    _, a, h, w = out.shape
    if h == w and a != h:
        return "NCHW"
    if a == h and w != h:
        return "NHWC"
    return "NCHW"
