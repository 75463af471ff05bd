"""invviz: see what a unit of a network responds to, and go back from features to inputs.

The verbs: :func:`visualize`, :func:`invert`, :func:`load_model`, :func:`list_layers`, :func:`top_units`.
"""

from ._compat import ensure_torchvision_importable

ensure_torchvision_importable()

from . import align, data, errors, ifv, metrics, optvis, plotting, priors  # noqa: E402
from .align import invert  # noqa: E402
from .attribution import UnitAttribution, top_units  # noqa: E402
from .errors import InvvizError  # noqa: E402
from .models import Capture, Preprocessing, list_layers, load_model, preprocessing_of  # noqa: E402
from .optvis import RenderResult, visualize  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "visualize", "invert", "load_model", "list_layers", "top_units", "Capture", "Preprocessing", "preprocessing_of",
    "RenderResult", "UnitAttribution", "InvvizError", "align", "data", "errors", "ifv", "metrics", "optvis",
    "plotting", "priors", "__version__",
]
