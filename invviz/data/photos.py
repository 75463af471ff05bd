"""Natural photos that ship inside installed packages (no download): matplotlib, scikit-image, scikit-learn."""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import torch

# (package, path inside the package) of colour photos; missing packages are skipped.
_PHOTO_FILES = [
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/retina.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
]


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


@functools.lru_cache(maxsize=1)
def photo_paths() -> dict[str, str]:
    """Paths of the colour photos available offline, by short name (e.g. `"chelsea"`)."""
    found = {}
    for package, rel in _PHOTO_FILES:
        root = _package_dir(package)
        if root is not None and os.path.isfile(os.path.join(root, rel)):
            found[os.path.splitext(os.path.basename(rel))[0]] = os.path.join(root, rel)
    return found


def load_photo(name: str) -> torch.Tensor:
    """One bundled photo as a float tensor `(3, H, W)` in [0, 1]."""
    from PIL import Image

    paths = photo_paths()
    if name not in paths:
        raise KeyError(f"no bundled photo {name!r}; available: {', '.join(paths)}")
    with Image.open(paths[name]) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def photos() -> dict[str, torch.Tensor]:
    """All bundled photos, `{name: (3, H, W)}` in [0, 1]."""
    return {name: load_photo(name) for name in photo_paths()}


def photo_crops(n: int, size: int, *, names: list[str] | None = None, scale: tuple[float, float] = (0.2, 0.6),
                seed: int = 0) -> torch.Tensor:
    """`n` random square crops `(n, 3, size, size)` of the bundled photos (side a uniform fraction `scale` of the
    photo's shorter side, resized with antialiasing), cycling over `names` (all photos by default). Use disjoint
    `names` for training and held-out sets."""
    import torch.nn.functional as F

    imgs = photos() if names is None else {k: load_photo(k) for k in names}
    if not imgs:
        raise KeyError("no bundled photos found; install matplotlib, scikit-image or scikit-learn")
    gen = torch.Generator().manual_seed(seed)
    keys = sorted(imgs)
    out = []
    for i in range(n):
        img = imgs[keys[i % len(keys)]]
        _, h, w = img.shape
        frac = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=gen))
        side = max(8, int(frac * min(h, w)))
        top = int(torch.randint(0, h - side + 1, (), generator=gen))
        left = int(torch.randint(0, w - side + 1, (), generator=gen))
        crop = img[None, :, top:top + side, left:left + side]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0])
    return torch.stack(out).clamp(0, 1)
