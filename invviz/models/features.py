"""A fixed feature extractor from any model's layer (generator encoders and comparators, inversion targets)."""

from __future__ import annotations

import torch
from torch import nn

from .capture import Capture, resolve_layer
from .loading import Normalize, model_device, preprocessing_of
from .state import frozen_eval


class LayerFeatures(nn.Module):
    """`images (B, 3, H, W) in [0, 1] -> features (B, d)` of `layer` (spatially averaged with `pool=True`).

    The model is normalized with its own preprocessing, run in eval mode with frozen weights (flags restored after
    each call), and left without hooks between calls. Gradients flow to the images.
    """

    def __init__(self, model: nn.Module, layer: str, pool: bool = True) -> None:
        super().__init__()
        resolve_layer(model, layer)
        object.__setattr__(self, "model", model)  # not a submodule: never trained through this wrapper
        self.layer, self.pool = layer, pool
        self.normalize = Normalize(preprocessing_of(model)).to(model_device(model))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with frozen_eval(self.model), Capture(self.model, [self.layer]) as cap:
            f = cap.run(self.normalize(images))[self.layer]
        return f.mean(dim=(2, 3)) if self.pool else f.flatten(1)
