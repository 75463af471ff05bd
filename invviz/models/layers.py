"""`list_layers`: every named module of a model with its output shape and feature layout."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ImageSizeError, InvvizError
from .capture import Capture
from .loading import default_input
from .state import frozen_eval

if TYPE_CHECKING:
    from .probe import Probe


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One named module: its type, raw output shape, layout, feature channels and calls per forward."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    layout: str
    channels: int | None
    calls: int


class LayerTable(list):
    """A list of :class:`LayerInfo` that prints as a table."""

    def __str__(self) -> str:
        rows = [("layer", "type", "output shape", "layout", "channels", "calls")]
        for info in self:
            rows.append((info.name, info.type, "-" if info.shape is None else str(tuple(info.shape)), info.layout,
                         "-" if info.channels is None else str(info.channels), str(info.calls)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def names(self) -> list[str]:
        """The layer names, in forward order."""
        return [info.name for info in self]


def list_layers(model: nn.Module | Probe, *, size: int | Sequence[int] | None = None) -> LayerTable:
    """List the dotted `named_modules()` names of `model` with output shape and layout.

    One forward pass (no gradients) of a grey image at the model's native size (or `size`) fills in shapes;
    modules that did not run show `-`, and `calls` > 1 marks a module object reused within the forward
    (capture one call of it with `"name@k"`). Rows are in the order modules first ran.

    Example:
        >>> import torchvision
        >>> table = list_layers(torchvision.models.resnet18(), size=64)
        >>> [(i.name, i.channels, i.layout) for i in table if i.name == "layer3"]
        [('layer3', 256, 'NCHW')]
    """
    from .probe import Probe, check_model, image_size

    size = None if size is None else image_size(size)
    layouts = model.layout_overrides if isinstance(model, Probe) else None
    model = check_model(model.model if isinstance(model, Probe) else model)
    names = [n for n, _ in model.named_modules() if n]
    order: dict[str, int] = {}
    x = default_input(model, 1, size)
    capture = Capture(model, names, clone=False, stop_early=False, strict=False, layouts=layouts,
                      translate_errors=False)  # worded below, with the native size
    with frozen_eval(model), torch.no_grad(), capture as cap:
        try:
            raw = cap.run(x, raw=True)
        except InvvizError:
            raise
        except Exception as err:  # noqa: BLE001 - the model's own complaint about the input size, made typed
            native = default_input(model, 1, None).shape[2:]
            if size is None or tuple(x.shape[2:]) == tuple(native):
                raise
            raise ImageSizeError(f"the model does not run at {tuple(x.shape[2:])} px ({type(err).__name__}:"
                                 f" {' '.join(str(err).split())[:160]}); list its layers at its native size"
                                 f" {tuple(native)} (size=None, or --size {native[0]}). Models that take one size"
                                 " only are resized for by the other verbs; for others use a larger size") from None
        for i, name in enumerate(raw):
            order[name] = i
    table = LayerTable()
    modules = dict(model.named_modules())
    for name in sorted(names, key=lambda n: order.get(n, len(order))):
        out = raw.get(name)
        layout = cap.layouts.get(name)
        table.append(LayerInfo(
            name=name, type=type(modules[name]).__name__,
            shape=None if out is None else tuple(out.shape),
            layout="-" if layout is None else layout.kind,
            channels=None if layout is None else layout.channels,
            calls=cap.calls.get(name, 0),
        ))
    return table
