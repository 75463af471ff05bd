"""`top_units`: which channels of a layer matter for a prediction, attributed with captum."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ._checks import single_image
from .errors import ObjectiveError
from .models.capture import Capture, resolve_layer
from .models.loading import Normalize, model_device, preprocessing_of
from .models.state import frozen_eval

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


def top_units(
    model: nn.Module,
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
        model: the network.
        layer: layer name.
        image: one image `(3, H, W)` or `(1, 3, H, W)` in [0, 1] (normalized inside).
        target: output index to explain (default: the predicted class).
        k: number of units returned.
        method: `"grad_x_act"` (captum `LayerGradientXActivation`) or `"integrated_gradients"`
            (`LayerIntegratedGradients`, from a grey baseline, `steps` steps).
    """
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    if method not in METHODS:
        raise ObjectiveError(f"unknown attribution method {method!r}; use one of {METHODS}")
    x = single_image(image).to(model_device(model))
    module = resolve_layer(model, layer)
    normalize = Normalize(preprocessing_of(model)).to(x.device)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return model(normalize(inp))

    with frozen_eval(model, freeze=False):
        with torch.no_grad(), Capture(model, [layer, ""]) as cap:
            raw = cap.run(normalize(x), raw=True)
            layout = cap.layouts[layer]
        logits = raw[""]
        if target is None:
            target = int(logits.argmax(dim=-1)[0])
        if not 0 <= target < logits.shape[-1]:
            raise ObjectiveError(f"target {target} is outside the model's {logits.shape[-1]} outputs")
        if method == "grad_x_act":
            attr = LayerGradientXActivation(forward, module).attribute(x, target=target)
        else:
            attr = LayerIntegratedGradients(forward, module).attribute(
                x, baselines=torch.full_like(x, 0.5), target=target, n_steps=steps)
    per_channel = layout.to_features(attr).sum(dim=(2, 3))[0].detach().cpu()  # (C,)
    order = per_channel.argsort(descending=True)[:k]
    return UnitAttribution(units=order.tolist(), scores=per_channel[order], all_scores=per_channel,
                           target=target, method=method)
