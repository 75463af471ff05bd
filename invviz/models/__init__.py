"""Model loading, preprocessing, layer listing, the capture primitive, and the one probe every method uses."""

from .capture import Capture, FromInput, LayerLayout, forward_events, resolve_layer
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
from .probe import Probe, as_probe, check_images, check_model, features, image_size, model_dtype, resolve_preprocessing
from .state import frozen_eval

__all__ = [
    "Capture", "FromInput", "LayerLayout", "forward_events", "resolve_layer", "LayerInfo", "LayerTable", "list_layers", "IMAGENET_MEAN",
    "IMAGENET_STD", "Normalize", "Preprocessing", "default_input", "load_checkpoint", "load_model",
    "model_device", "preprocessing_of", "Probe", "as_probe", "check_images", "check_model", "features", "image_size",
    "model_dtype", "resolve_preprocessing", "frozen_eval",
]
