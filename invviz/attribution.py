"""Attribution with captum, in one place: `top_units` (which channels of a layer matter for a prediction) and
`unit_heatmap` (where in an image a unit's response comes from; the atlas's example heat maps)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import torch
from torch import nn

from .errors import ImageSizeError, ObjectiveError, UnitIndexError
from .models.capture import resolve_layer
from .models.probe import Probe, as_probe, check_images

METHODS = ("grad_x_act", "integrated_gradients")


@dataclasses.dataclass
class UnitAttribution:
    """Channels of a layer ranked by their attribution to one target.

    Attributes:
        units: the top channel indices, most important first `(k,)`.
        scores: their attribution (summed over space) `(k,)`.
        all_scores: the attribution of every channel `(C,)`.
        target: the class (output index) attributed.
        method: captum method used.
    """

    units: list[int]
    scores: torch.Tensor
    all_scores: torch.Tensor
    target: int
    method: str
    preprocessing: object = None


def top_units(
    model: nn.Module | Probe,
    layer: str,
    image: torch.Tensor,
    target: int | None = None,
    *,
    k: int = 8,
    method: str = "grad_x_act",
    steps: int = 32,
) -> UnitAttribution:
    """Attribute a prediction to `layer`'s channels with captum and return the `k` that matter most.

    Lucid's "semantic dictionary": the units to visualize for this image.

    Args:
        model: the network, or a :class:`~invviz.Probe` of it.
        layer: layer name.
        image: one image `(3, H, W)` or `(1, 3, H, W)` in [0, 1] (normalized inside, resized for one-size models).
        target: output index to explain (default: the predicted class).
        k: number of units returned.
        method: `"grad_x_act"` (captum `LayerGradientXActivation`) or `"integrated_gradients"`
            (`LayerIntegratedGradients`, from a grey baseline, `steps` steps).
    """
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    probe = as_probe(model)
    model = probe.model
    if method not in METHODS:
        raise ObjectiveError(f"unknown attribution method {method!r}; use one of {METHODS}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ObjectiveError(f"k must be a whole number >= 1; got {k!r}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        kind = "by name" if isinstance(target, str) else f"as {type(target).__name__}"
        raise UnitIndexError(f"the target is an output index (int), e.g. 285; got {target!r} ({kind})")
    probe = probe.reading([layer, ""])
    x = check_images(image, channels=probe.channels_in)
    if x.shape[0] != 1:
        raise ImageSizeError(f"top_units explains one image at a time; got a batch of {x.shape[0]}")
    x = x.to(device=probe.device, dtype=probe.dtype)
    module = resolve_layer(model, layer)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return model(probe.model_input(inp))

    with torch.no_grad():
        with probe:
            raw = probe(x, raw=True)
            layout = probe.layout(layer)
    logits = raw[""].flatten(1)
    if target is None:
        target = int(logits.argmax(dim=-1)[0])
    if not 0 <= target < logits.shape[-1]:
        raise UnitIndexError(f"target {target} is outside the model's {logits.shape[-1]} outputs")
    with probe.frozen(freeze=False):
        if method == "grad_x_act":
            attr = LayerGradientXActivation(forward, module).attribute(x, target=target)
        else:
            attr = LayerIntegratedGradients(forward, module).attribute(
                x, baselines=torch.full_like(x, 0.5), target=target, n_steps=steps)
    if isinstance(attr, (tuple, list)):  # a layer returning several tensors (HRNet's branches): the probe reads the first
        attr = attr[0]
    per_channel = layout.to_features(attr).sum(dim=(2, 3))[0].detach().float().cpu()  # (C,)
    order = per_channel.argsort(descending=True)[:k]
    if not bool((per_channel != 0).any()):
        warnings.warn(f"every channel of {layer!r} has attribution exactly 0 for target {target}: the output does"
                      " not depend on this layer here (a zero-initialized head, as timm's untrained MLP-Mixer has,"
                      " or dead units), so the units returned are an arbitrary order, not the ones that matter",
                      stacklevel=2)
    return UnitAttribution(units=order.tolist(), scores=per_channel[order], all_scores=per_channel,
                           target=target, method=method, preprocessing=probe.preprocessing)


def unit_heatmap(model: nn.Module | Probe, layer: str, weights: torch.Tensor | Callable[[int], torch.Tensor],
                 image: torch.Tensor) -> torch.Tensor:
    """Where in `image` a unit's response comes from: captum's input x gradient of the unit's mean activation
    (`weights (C,)` over `layer`'s channels: one-hot for a channel, a direction otherwise; or a function of the
    channel count that gives them), summed over colour and scaled to [0, 1], `(H, W)`. `image` is `(3, H, W)` or
    `(1, 3, H, W)` in [0, 1]."""
    from captum.attr import InputXGradient

    probe = as_probe(model).reading([layer])
    x = check_images(image, channels=probe.channels_in).to(device=probe.device, dtype=probe.dtype)
    if x.shape[0] != 1:
        raise ImageSizeError(f"unit_heatmap explains one image at a time; got a batch of {x.shape[0]}")

    def unit_mean(images: torch.Tensor) -> torch.Tensor:
        with probe.frozen():
            f = probe(images)[layer]
            w = torch.as_tensor(weights(f.shape[1]) if callable(weights) else weights).to(f.device, f.dtype)
            return torch.einsum("c,bchw->bhw", w, f).mean(dim=(1, 2))[:, None]

    with torch.enable_grad():
        attr = InputXGradient(unit_mean).attribute(x.clone().requires_grad_(True), target=0)
    heat = attr[0].abs().sum(0).detach()
    return (heat / heat.max().clamp(min=1e-12)).float().cpu()
