"""Model loading, preprocessing, layer listing, and the one capture primitive."""

from .capture import Capture, LayerLayout, resolve_layer
from .discriminator import Discriminator
from .features import LayerFeatures
from .layers import LayerInfo, LayerTable, list_layers
from .loading import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    Preprocessing,
    default_input,
    load_checkpoint,
    load_model,
    model_device,
    preprocessing_of,
)
from .state import frozen_eval

__all__ = [
    "Capture", "LayerLayout", "resolve_layer", "LayerInfo", "LayerTable", "list_layers", "IMAGENET_MEAN",
    "IMAGENET_STD", "Normalize", "Preprocessing", "default_input", "load_checkpoint", "load_model",
    "model_device", "preprocessing_of", "frozen_eval", "LayerFeatures", "Discriminator",
]
