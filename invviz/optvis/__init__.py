"""Feature visualization: objectives, parameterizations, transforms and the render loop."""

from .objectives import (
    IMAGE,
    Channel,
    Custom,
    DeepDream,
    Direction,
    Diversity,
    Neuron,
    Objective,
    Sum,
    TotalVariation,
    Units,
    aggregate,
    as_objective,
    channel,
    class_logit,
    custom,
    deepdream,
    direction,
    diversity,
    dot_cossim,
    neuron,
    total_variation,
    units,
)
from .param import FFTImage, ImageParam, MacoImage, PixelImage, decorrelate_colors, make_param, natural_magnitude
from .render import RenderResult, render, visualize
from .transforms import (
    Compose,
    Jitter,
    Pad,
    RandomRotate,
    RandomScale,
    Resize,
    Transform,
    make_transforms,
    standard_transforms,
)

__all__ = [
    "IMAGE", "Channel", "Custom", "DeepDream", "Direction", "Diversity", "Neuron", "Objective", "Sum",
    "TotalVariation", "Units", "aggregate", "as_objective", "channel", "class_logit", "custom", "deepdream", "direction",
    "diversity", "dot_cossim", "neuron", "total_variation", "units", "FFTImage", "ImageParam", "MacoImage",
    "PixelImage", "decorrelate_colors", "make_param", "natural_magnitude", "RenderResult", "render", "visualize",
    "Compose", "Jitter", "Pad", "RandomRotate", "RandomScale", "Resize", "Transform", "make_transforms",
    "standard_transforms",
]
