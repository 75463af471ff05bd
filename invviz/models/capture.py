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
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import (
    ImageSizeError,
    InvvizError,
    LayerNotFoundError,
    LayerReuseError,
    LayoutError,
    ModelTypeError,
    SettingError,
)

Layout = Literal["NCHW", "NHWC", "tokens", "vector"]
MAX_PREFIX_TOKENS = 16  # class, distillation and register tokens ahead of the patch tokens
# what a model's own forward raises for an input it cannot take (a wrong size or channel count)
MODEL_INPUT_ERRORS = (RuntimeError, AssertionError, ValueError, IndexError, TypeError)
_NCHW_MODULES = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveMaxPool2d, nn.GroupNorm, nn.InstanceNorm2d, nn.Upsample)


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


@dataclasses.dataclass(frozen=True)
class FromInput:
    """A replacement computed from a layer's input rather than its output: `replace={"layer1.0.relu":
    FromInput(fn)}` makes the layer's output `fn(input)` (an `fn` that returns None keeps the output). A module
    with an `inplace` flag computes out of place while the capture is open (its input would be overwritten
    otherwise); the flag is restored on exit."""

    fn: Callable[[torch.Tensor], torch.Tensor | None]


def forward_events(model: nn.Module, x: torch.Tensor | tuple[Any, ...]) -> list[tuple[str, str]]:
    """The order modules run in: `("start" | "end", name)` for every module call of one forward of `x` (without
    gradients; the hooks are removed after, also on error)."""
    events: list[tuple[str, str]] = []
    handles = []
    try:
        for name, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(lambda mod, args, name=name: events.append(("start", name))))
            handles.append(m.register_forward_hook(lambda mod, a, o, name=name: events.append(("end", name))))
        with torch.no_grad():
            model(*x) if isinstance(x, tuple) else model(x)
    finally:
        for h in handles:
            h.remove()
    return events


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
        cache: a dict shared by several captures of the same model and layers: layouts found for an input shape
            are kept there, and a later capture skips the probing forward for that shape.
        replace: write into the forward: `{layer: fn}` replaces the layer's output by `fn(output)` while the
            capture is open (a captured layer that is also replaced reads the new output); `"name@k"` replaces the
            k-th call only; a :class:`FromInput` value computes the new output from the layer's input. The hooks
            are removed on exit, also after an error. :meth:`forward` runs the model with the replacements and
            returns its own output.
        translate_errors: the model's own complaint about an input (a wrong channel count or size) becomes an
            :class:`ImageSizeError`; False leaves it to a caller that words it itself.

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
        cache: dict | None = None,
        replace: Mapping[str, Callable[[torch.Tensor], torch.Tensor] | FromInput] | None = None,
        translate_errors: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ModelTypeError(f"Capture reads the layers of a torch nn.Module; got {type(model).__name__}"
                                 + (f" (load the model first: invviz.load_model({model!r}))" if isinstance(model, str)
                                    else ""))
        self.model = model
        self.translate_errors = translate_errors  # a model's own complaint about the input, as an ImageSizeError
        self._cache = cache  # {input shape: (layouts, calls)} shared by captures of one model (see Probe)
        self._probed_hw: tuple[int, ...] | None = None
        self.specs = list(dict.fromkeys(layers))
        self.clone = clone
        self.stop_early = stop_early
        self.layout_overrides = dict(layouts or {})
        self.strict = strict
        self._targets: dict[str, tuple[nn.Module, int | None]] = {}
        for spec in self.specs:
            name, call = _parse(spec)
            self._targets[spec] = (resolve_layer(model, name), call)
        if replace is not None and not isinstance(replace, Mapping):
            raise SettingError(f"replace maps layer names to functions of their output, e.g. {{'layer3': fn}}; got"
                               f" {type(replace).__name__}")
        self._replace: dict[str, tuple[nn.Module, int | None, Callable]] = {}
        for spec, fn in (replace or {}).items():
            if not callable(fn.fn if isinstance(fn, FromInput) else fn):
                raise SettingError(f"replace[{spec!r}] must be a function of the layer's output; got"
                                   f" {type(fn).__name__}")
            name, call = _parse(spec)
            self._replace[spec] = (resolve_layer(model, name), call, fn)
        self._restart: list[Callable[[], None]] = []
        self._inplace: list[tuple[nn.Module, bool]] = []  # in-place flags turned off for FromInput, restored on exit
        self._input_hw: tuple[int, ...] | None = None
        self._handles: list[Any] = []
        self._probed = False
        self.calls: dict[str, int] = {}  # calls per forward of each captured module (known after the first run)
        self.layouts: dict[str, LayerLayout] = {}
        self._grids: list[tuple[int, int]] = []
        self._outputs: dict[str, torch.Tensor] = {}
        self._count: dict[int, int] = {}
        self._probing = False
        self._recent: tuple[nn.Module, torch.Tensor] | None = None
        self._leaf_of: dict[str, nn.Module | None] = {}

    # -- hooks ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Capture:
        try:
            by_module: dict[int, list[str]] = {}
            for spec, (module, _) in self._targets.items():
                by_module.setdefault(id(module), []).append(spec)
            for spec_list in by_module.values():
                module = self._targets[spec_list[0]][0]
                self._handles.append(module.register_forward_hook(self._make_hook(spec_list)))
            for module, call, fn in self._replace.values():
                if isinstance(fn, FromInput) and isinstance(getattr(module, "inplace", None), bool):
                    self._inplace.append((module, module.inplace))
                    module.inplace = False
                self._handles.append(module.register_forward_hook(self._replacing(call, fn), prepend=True))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this capture registered and restore the in-place flags it turned off."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, flag in reversed(self._inplace):
            module.inplace = flag
        self._inplace.clear()
        self._restart.clear()

    def _replacing(self, call: int | None, fn: Callable):
        """A hook that returns `fn(output)` (or `fn.fn(input)` for a :class:`FromInput`) for the chosen call of its
        module (every call when none is chosen); its call count starts again at every run."""
        seen = [0]

        def hook(mod: nn.Module, args: Any, output: Any) -> Any:
            n = seen[0]
            seen[0] = n + 1
            if call is not None and n != call:
                return None
            if isinstance(fn, FromInput):
                x = args[0] if args else None
                return fn.fn(x) if isinstance(x, torch.Tensor) else None
            if not isinstance(output, torch.Tensor):
                raise LayoutError(f"replace: {type(mod).__name__} returns {type(output).__name__}, not a tensor;"
                                  " replace a layer whose output is one tensor")
            return fn(output)

        self._restart.append(lambda: seen.__setitem__(0, 0))
        return hook

    def forward(self, x: torch.Tensor | tuple[Any, ...]) -> Any:
        """The model's own output for `x` with the replacements in place (captured layers are not returned)."""
        if not self._handles:
            raise SettingError("Capture.forward() runs inside `with Capture(model, layers, replace=...) as cap:`")
        for restart in self._restart:
            restart()
        self._outputs, self._count = {}, {}
        stop, self.stop_early = self.stop_early, False
        try:
            return self.model(*x) if isinstance(x, tuple) else self.model(x)
        finally:
            self.stop_early, self._outputs = stop, {}

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
                        recent = self._recent
                        self._leaf_of[spec] = recent[0] if recent is not None and recent[1] is tensor else None
                elif tensor is not None and (call or 0) == n:
                    self._outputs[spec] = tensor.clone() if self.clone else tensor
            if (not self._probing and self.stop_early and len(self._outputs) == len(self.specs)
                    and "" not in self._targets):
                raise _StopForward

        return hook

    def _grid_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        """Record which module first returned each tensor, and the spatial grids of 4D outputs (both possible
        readings: patch embeddings are NCHW convolutions, NHWC stages are not) to explain token counts."""
        if isinstance(output, torch.Tensor):
            if self._recent is None or output is not self._recent[1]:
                self._recent = (module, output)  # a container returning its child's tensor keeps the child
            if output.dim() == 4:
                self._grids.append((int(output.shape[2]), int(output.shape[3])))
                if _module_kind(module, output) != "NCHW":
                    self._grids.append((int(output.shape[1]), int(output.shape[2])))

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
            raise SettingError("Capture.run() runs inside `with Capture(model, layers) as cap:` (the hooks are"
                               " placed on entering and removed on leaving)")
        try:
            return self._run(x, raw)
        except InvvizError:
            raise
        except MODEL_INPUT_ERRORS as err:
            if not self.translate_errors:
                raise
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else "a tuple of inputs"
            what = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
            raise ImageSizeError(f"{type(self.model).__name__} could not run on an input of shape {shape}:"
                                 f" {type(err).__name__}: {what}. Check the channels and size the model takes"
                                 " (invviz.Probe also normalizes and resizes for it)") from err

    def _run(self, x: torch.Tensor | tuple[Any, ...], raw: bool) -> dict[str, torch.Tensor]:
        for restart in self._restart:
            restart()
        self._outputs = {}
        self._count = {}
        key = _input_key(x)
        cached = None if self._cache is None else self._cache.get(key)
        if not self._probed and cached is not None and all(s in cached[0] for s in self.specs):
            self.layouts, self.calls = dict(cached[0]), dict(cached[1])
            self._probed = True
            self._probed_hw = key[-2:] if key else None
        if not self._probed:
            self._probe(x)
            self._probed_hw = key[-2:] if key else None
            if self._cache is not None and key is not None:  # what other captures of the model found is kept
                old = cached or ({}, {})
                self._cache[key] = ({**old[0], **self.layouts}, {**old[1], **self.calls})
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
        return {spec: self._layout_now(spec, out, key).to_features(out) for spec, out in outputs.items()}

    def _layout_now(self, spec: str, out: torch.Tensor, key: tuple[int, ...] | None) -> LayerLayout:
        """The layout for this run: a token layout's grid follows the input size when it differs from the probe's."""
        layout = self.layouts[spec]
        if layout.kind != "tokens" or out.shape[1] - layout.prefix == layout.grid[0] * layout.grid[1]:
            return layout
        h0, w0 = self._probed_hw or (0, 0)
        if key and h0 and w0:
            grid = (key[-2] * layout.grid[0] // h0, key[-1] * layout.grid[1] // w0)
            if grid[0] * grid[1] == out.shape[1] - layout.prefix:
                return dataclasses.replace(layout, grid=grid)
        raise LayoutError(f"layer {spec!r} gave {out.shape[1]} tokens, which the patch grid {layout.grid} found for"
                          f" the first input does not explain at input size {key[-2:] if key else '?'}")

    def _probe(self, x: torch.Tensor | tuple[Any, ...]) -> None:
        self._input_hw = tuple(x.shape[-2:]) if isinstance(x, torch.Tensor) and x.dim() == 4 else None
        self._probing = True
        self._grids = []
        self._recent = None  # (module, output) of the module that last returned a new tensor
        self._leaf_of = {}  # spec -> the module that produced the captured tensor, when the target passed it on
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
        first = {spec: out for spec, out in self._outputs.items()}
        second = self._second_size_shapes(x, first)
        for spec, (module, _) in self._targets.items():
            out = first.get(spec)
            if out is None:
                if not self.strict or self.calls.get(spec, 0) == 0:
                    continue
                raise LayoutError(f"layer {spec!r} returned no tensor ({type(module).__name__})")
            try:
                self.layouts[spec] = self._layout(spec, module, out, second.get(spec))
            except LayoutError:
                if self.strict:
                    raise
        self._outputs = first
        self._probed = True

    def _second_size_shapes(self, x: Any, first: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        """Output shapes of the captured layers for an input 32 px larger, where that tells spatial axes from
        channels (layouts of 3D/4D outputs of modules whose type does not decide); empty where it cannot be run."""
        undecided = [s for s, out in first.items() if out is not None and out.dim() in (3, 4)
                     and s not in self.layout_overrides and _module_kind(self._targets[s][0], out) is None
                     and (self._leaf_of.get(s) is None or _module_kind(self._leaf_of[s], out) is None)]
        if (not undecided or not isinstance(x, torch.Tensor) or x.dim() != 4 or x.is_complex()
                or any(m.training for m in self.model.modules())):
            return {}
        bigger = F.interpolate(x.detach(), size=(x.shape[2] + 32, x.shape[3] + 32), mode="bilinear",
                               align_corners=False)
        saved, self._outputs, self._count = self._outputs, {}, {}
        leaves = dict(self._leaf_of)
        self._probing = True
        try:
            with torch.no_grad():
                self.model(bigger)
            return {s: tuple(out.shape) for s, out in self._outputs.items() if out is not None}
        except Exception:  # noqa: BLE001 - a model that takes one input size only: no second opinion
            return {}
        finally:
            self._probing = False
            self._outputs, self._count, self._leaf_of = saved, {}, leaves

    def _layout(self, spec: str, module: nn.Module, out: torch.Tensor, bigger: tuple[int, ...] | None
                ) -> LayerLayout:
        kind = self.layout_overrides.get(spec) or self._decide(spec, module, out, bigger)
        shape = tuple(out.shape)
        if kind == "vector":
            return LayerLayout("vector", int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1, (1, 1))
        if kind == "NCHW":
            _need_dims(spec, shape, 4, kind)
            return LayerLayout("NCHW", shape[1], (shape[2], shape[3]))
        if kind == "NHWC":
            _need_dims(spec, shape, 4, kind)
            return LayerLayout("NHWC", shape[3], (shape[1], shape[2]))
        if kind == "tokens":
            _need_dims(spec, shape, 3, kind)
            n = shape[1]
            prefix_hint = getattr(self.model, "num_prefix_tokens", None)
            candidates = [(n - h * w, (h, w)) for h, w in dict.fromkeys(self._grids)  # patch grids seen
                          if 0 <= n - h * w <= MAX_PREFIX_TOKENS]
            if not candidates and self._input_hw and self._input_hw[0] == self._input_hw[1]:
                # a hierarchical token grid (LeViT's later stages: 49 and 16 tokens at 224 px) that no patch
                # embedding produced: a square input makes a square grid
                candidates = [(n - s * s, (s, s)) for s in range(1, math.isqrt(n) + 1) if n - s * s <= MAX_PREFIX_TOKENS]
            if isinstance(prefix_hint, int):
                candidates = [c for c in candidates if c[0] == prefix_hint] or candidates
            if not candidates:
                raise LayoutError(
                    f"layer {spec!r} outputs tokens {shape} but no patch-embedding grid explains {n} tokens; pass"
                    f" layouts={{{spec!r}: 'vector'}} to treat the output as a flat vector"
                )
            prefix, grid = min(candidates)
            return LayerLayout("tokens", shape[2], grid, prefix)
        raise LayoutError(f"layer {spec!r} has an unsupported layout {kind!r} for output shape {shape}; use one of"
                          " 'NCHW', 'NHWC', 'tokens', 'vector'")

    def _decide(self, spec: str, module: nn.Module, out: torch.Tensor, bigger: tuple[int, ...] | None) -> Layout:
        """The layout of a raw output, from the module's type, else from which axes grow with the input, else from
        the shape; a :class:`LayoutError` naming the `layouts=` override where none of them decides."""
        if out.dim() <= 2 or out.dim() > 4:
            return "vector"
        by_module = _module_kind(module, out)
        leaf = self._leaf_of.get(spec)
        if by_module is None and leaf is not None:
            by_module = _module_kind(leaf, out)
        by_size = _kind_from_growth(tuple(out.shape), bigger)
        if by_size is not None:
            return by_size  # measured on this model: trusted over the module's type
        if by_module is not None:
            return by_module
        if out.dim() == 3:
            return "tokens"
        stated = _stated_format(self.model, _parse(spec)[0])
        if stated is not None:
            return stated  # the model's own description of its feature stages (timm's feature_info)
        _, a, h, w = out.shape
        if getattr(self.model, "output_fmt", None) == "NHWC" and a == h != w:
            return "NHWC"
        if h == w != a:
            return "NCHW"
        if a == h != w:
            return "NHWC"
        raise LayoutError(
            f"cannot tell channels from space in the output {tuple(out.shape)} of layer {spec!r}"
            f" ({type(module).__name__}); pass layouts={{{spec!r}: 'NCHW'}} (channels first) or"
            f" layouts={{{spec!r}: 'NHWC'}} (channels last)"
        )


def _stated_format(model: nn.Module, name: str) -> Layout | None:
    """The layout a timm model states for one of its feature stages: `model.output_fmt` (NCHW unless it says NHWC)
    for the modules its `feature_info` lists."""
    info = getattr(model, "feature_info", None)
    if not isinstance(info, (list, tuple)):
        return None
    try:
        modules = {str(i["module"]) for i in info}
    except (TypeError, KeyError):
        return None
    if name not in modules:
        return None
    fmt = getattr(model, "output_fmt", "NCHW")
    return fmt if fmt in ("NCHW", "NHWC") else None


def _input_key(x: Any) -> tuple[int, ...] | None:
    return tuple(int(v) for v in x.shape[1:]) if isinstance(x, torch.Tensor) else None


def _need_dims(spec: str, shape: tuple[int, ...], dims: int, kind: str) -> None:
    if len(shape) != dims:
        raise LayoutError(f"layout {kind!r} needs a {dims}-D output but layer {spec!r} gives {shape}")


def _module_kind(module: nn.Module, out: torch.Tensor) -> Layout | None:
    """The layout a module's type implies for its output, checked against the output's shape; None where the type
    does not decide (containers, activations, custom blocks)."""
    shape = tuple(out.shape)
    if out.dim() == 4 and isinstance(module, _NCHW_MODULES):
        return "NCHW"
    if isinstance(module, nn.Linear) and shape[-1] == module.out_features:
        return "NHWC" if out.dim() == 4 else "tokens" if out.dim() == 3 else "vector"
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        c = module.normalized_shape[0]
        if type(module).forward is nn.LayerNorm.forward:  # torch's: normalizes the last axis
            if shape[-1] == c:
                return "NHWC" if out.dim() == 4 else "tokens" if out.dim() == 3 else "vector"
            return None
        if out.dim() == 4 and shape[1] == c and (shape[-1] != c or type(module).__name__.endswith("2d")):
            return "NCHW"  # LayerNorm2d (timm, torchvision's ConvNeXt): channels first
        if out.dim() == 4 and shape[-1] == c and shape[1] != c:
            return "NHWC"
    return None


def _kind_from_growth(shape: tuple[int, ...], bigger: tuple[int, ...] | None) -> Layout | None:
    """Spatial axes grow with the input, the channel axis does not: the layout that fits, when exactly one does."""
    if bigger is None or len(bigger) != len(shape):
        return None
    grew = [a != b for a, b in zip(shape[1:], bigger[1:])]
    if len(shape) == 4:
        return {(False, True, True): "NCHW", (True, True, False): "NHWC"}.get(tuple(grew))
    if len(shape) == 3:
        return "tokens" if grew == [True, False] else None
    return None


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None
