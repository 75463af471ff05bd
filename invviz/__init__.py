"""invviz: see what a unit of a network responds to, and go back from features to inputs.

The verbs: :func:`visualize`, :func:`invert`, :func:`accentuate`, :func:`factorize`, :func:`top_units`,
:func:`load_model`, :func:`list_layers`.
"""

from ._compat import ensure_torchvision_importable

ensure_torchvision_importable()

from . import align, data, errors, ifv, io, metrics, models, optvis, plotting, priors, training  # noqa: E402
from .atlas import Atlas, atlas  # noqa: E402
from .attribution import UnitAttribution, top_units  # noqa: E402
from .errors import InvvizError  # noqa: E402
from .inversion import Inversion, invert  # noqa: E402
from .models import Capture, Preprocessing, Probe, list_layers, load_model, preprocessing_of  # noqa: E402
from .optvis import Factorization, RenderResult, accentuate, factorize, visualize  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "visualize", "invert", "atlas", "Atlas", "accentuate", "factorize", "Factorization", "load_model", "list_layers", "top_units", "Capture", "Probe", "Preprocessing",
    "preprocessing_of", "RenderResult", "Inversion", "UnitAttribution", "InvvizError", "align", "data", "errors",
    "ifv", "io", "metrics", "models", "optvis", "plotting", "priors", "training", "__version__",
]
