"""The invviz exception hierarchy.

Every error invviz raises for bad input derives from :class:`InvvizError`; where a built-in exception fits
(a missing name, a bad value, an index out of range) the subclass derives from it as well, so
``except KeyError`` keeps working for code that does not know invviz. Messages say what was expected, what
came, and how to fix it.
"""

from __future__ import annotations


class InvvizError(Exception):
    """Base class of every error raised by invviz for bad input or an unusable state."""

    def __str__(self) -> str:  # KeyError quotes its message; keep invviz messages readable.
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(InvvizError, KeyError):
    """A model name that neither timm nor torchvision knows."""


class PretrainedWeightsError(InvvizError, RuntimeError):
    """Pretrained weights could not be obtained (offline, or none published)."""


class DatasetNotFoundError(InvvizError, FileNotFoundError):
    """A dataset's files are not where they were looked for."""


class CheckpointError(InvvizError, ValueError):
    """A checkpoint that cannot be read, is truncated, or does not fit the model."""


class LayerNotFoundError(InvvizError, KeyError):
    """A layer name that is not a module of the model."""


class LayerReuseError(InvvizError, RuntimeError):
    """A captured module ran more than once in one forward pass and no call was selected."""


class LayoutError(InvvizError, ValueError):
    """A layer output whose layout (channels, tokens, grid) cannot be determined."""


class UnitIndexError(InvvizError, IndexError):
    """A channel, neuron or class index outside the layer's range."""


class ObjectiveError(InvvizError, TypeError):
    """Something given as an objective that is not one, or an objective that does not fit its layer."""


class ParameterizationError(InvvizError, ValueError):
    """A parameterization or transform given by an unknown name or with invalid arguments."""


class ImageSizeError(InvvizError, ValueError):
    """An image size, shape, range or dtype the model or the method cannot take."""


class NonFiniteError(InvvizError, FloatingPointError):
    """NaN or infinity appeared in activations, objective values or losses."""


class DeviceError(InvvizError, ValueError):
    """A device that does not match where the model lives, or one this machine does not have."""


class ModelTypeError(InvvizError, TypeError):
    """Something given as a model (or generator, prior, state dict) that is not one."""


class SettingError(InvvizError, ValueError):
    """A setting outside its valid range: steps, learning rates, sizes, intervals, weights."""


class OutputPathError(InvvizError, OSError):
    """A file invviz was asked to write whose path cannot be written (checked before the work starts)."""


class DataError(InvvizError, ValueError):
    """Training or evaluation data of the wrong kind: not images, normalized, uint8, wrong size or channels."""


class DistributedError(InvvizError, RuntimeError):
    """A distributed run that is set up inconsistently (world size, batch size, backend)."""


class DeviceMemoryError(InvvizError, MemoryError):
    """A render (or other step) that would not fit in the device's free memory; says the batch that would."""


__all__ = [
    "InvvizError",
    "DeviceMemoryError",
    "ModelNotFoundError",
    "PretrainedWeightsError",
    "CheckpointError",
    "DatasetNotFoundError",
    "LayerNotFoundError",
    "LayerReuseError",
    "LayoutError",
    "UnitIndexError",
    "ObjectiveError",
    "ParameterizationError",
    "ImageSizeError",
    "NonFiniteError",
    "DeviceError",
    "ModelTypeError",
    "SettingError",
    "OutputPathError",
    "DataError",
    "DistributedError",
]
