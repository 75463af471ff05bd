"""Import-time compatibility shims.

torchvision wheels are built against one CUDA variant of torch. When the installed torch is another variant
(for instance the CPU build of the same version), torchvision's C extension cannot load, and
``import torchvision`` then fails inside ``torchvision/_meta_registrations.py`` because it registers fake
kernels for the ``torchvision::nms``/``qnms`` operators that the extension would have defined. Nothing in
invviz (or in the models of timm and torchvision) needs those detection operators, so when — and only when —
the extension is missing we declare the two operator schemas ourselves and import torchvision again. Calling
the operators still fails with torch's own "no kernel" error.
"""

from __future__ import annotations

import importlib.util
import sys

import torch

_SHIM_LIBRARY: torch.library.Library | None = None


def ensure_torchvision_importable() -> None:
    """Import torchvision, declaring its detection-op schemas first if its C extension cannot load."""
    global _SHIM_LIBRARY
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "models"):
        return
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _SHIM_LIBRARY = torch.library.Library("torchvision", "DEF")
        _SHIM_LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _SHIM_LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision  # noqa: F401,F811
