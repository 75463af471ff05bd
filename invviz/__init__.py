"""invviz: see what a unit of a network responds to, and go back from features to inputs.

The verbs: :func:`visualize`, :func:`invert`, :func:`accentuate`, :func:`factorize`, :func:`top_units`,
:func:`load_model`, :func:`list_layers`.

Names load on first use (PEP 562), so `import invviz` and the command line's `--help` do not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("align", "data", "errors", "ifv", "io", "metrics", "models", "optvis", "plotting", "priors",
               "settings", "training")
_NAMES = {
    "atlas": ".microscope", "Atlas": ".microscope", "concepts": ".dictionary", "Concepts": ".dictionary",
    "top_units": ".attribution", "UnitAttribution": ".attribution",
    "InvvizError": ".errors",
    "invert": ".inversion", "Inversion": ".inversion",
    "Capture": ".models", "Preprocessing": ".models", "Probe": ".models", "as_probe": ".models",
    "list_layers": ".models",
    "load_model": ".models", "preprocessing_of": ".models",
    "visualize": ".optvis", "accentuate": ".optvis", "factorize": ".optvis", "Factorization": ".optvis",
    "RenderResult": ".optvis",
}

__all__ = [
    "visualize", "invert", "atlas", "Atlas", "concepts", "Concepts", "accentuate", "factorize", "Factorization", "load_model", "list_layers",
    "top_units", "Capture", "Probe", "as_probe", "Preprocessing", "preprocessing_of", "RenderResult", "Inversion",
    "UnitAttribution", "InvvizError", *_SUBMODULES, "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _NAMES:
        if name != "errors":
            from ._compat import ensure_torchvision_importable

            ensure_torchvision_importable()
        if name in _SUBMODULES:
            return importlib.import_module(f".{name}", __name__)
        value = getattr(importlib.import_module(_NAMES[name], __name__), name)
        globals()[name] = value  # found once; later lookups do not come here
        return value
    raise AttributeError(f"module 'invviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
