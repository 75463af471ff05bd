"""Natural photos that ship inside installed packages (no download): matplotlib, scikit-image, scikit-learn."""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import torch

from ..errors import DatasetNotFoundError, SettingError

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
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        return None
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


def load_photo(name: str, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """One bundled photo (e.g. `"chelsea"`, see :func:`photo_paths`) as a float tensor `(3, H, W)` in [0, 1];
    with `size`, the centre square crop resized to it."""
    paths = photo_paths()
    if not isinstance(name, str) or name not in paths:
        ships = {os.path.splitext(os.path.basename(rel))[0]: pkg for pkg, rel in _PHOTO_FILES}
        pip = {"skimage": "scikit-image", "sklearn": "scikit-learn"}
        hint = (f" ({name!r} ships with {pip.get(ships[name], ships[name])}: pip install"
                f" {pip.get(ships[name], ships[name])})" if isinstance(name, str) and name in ships else "")
        raise DatasetNotFoundError(f"no bundled photo {name!r}{hint}; available: {', '.join(paths) or 'none'}."
                                   " For your own file use invviz.data.load_image(path)")
    return load_image(paths[name], size)


def load_image(path: str | os.PathLike[str], size: int | tuple[int, int] | None = None, *, channels: int = 3
               ) -> torch.Tensor:
    """An image file as a float tensor `(C, H, W)` in [0, 1] (RGB, or grey with `channels=1`); with `size` the
    centre square crop (for an int) resized to `size` (antialiased)."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"no image file at {path!r}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetNotFoundError(f"{path!r} is not an image file PIL can read ({err})") from None
    x = torch.from_numpy(arr)
    x = x.permute(2, 0, 1).contiguous() if x.dim() == 3 else x[None]
    if size is not None:
        x = _fit(x, size)
    return x


def _fit(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Centre-crop to the target's aspect ratio, then resize with antialiasing; `(C, H, W)` in, out."""
    import torch.nn.functional as F

    th, tw = (size, size) if isinstance(size, int) else size
    _, h, w = x.shape
    scale = min(h / th, w / tw)
    ch, cw = max(1, round(th * scale)), max(1, round(tw * scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[None, :, top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def photos() -> dict[str, torch.Tensor]:
    """All bundled photos, `{name: (3, H, W)}` in [0, 1]."""
    return {name: load_photo(name) for name in photo_paths()}


def _square_crop(img: torch.Tensor, top: int, left: int, side: int, size: int) -> torch.Tensor:
    """The `side`-pixel square of `img (C, H, W)` at `(top, left)`, resized to `size` (antialiased)."""
    import torch.nn.functional as F

    crop = img[None, :, top:top + side, left:left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def photo_crops(n: int, size: int, *, names: list[str] | None = None, scale: tuple[float, float] = (0.2, 0.6),
                seed: int = 0) -> torch.Tensor:
    """`n` random square crops `(n, 3, size, size)` of the bundled photos (side a uniform fraction `scale` of the
    photo's shorter side, resized with antialiasing), cycling over `names` (all photos by default). Use disjoint
    `names` for training and held-out sets."""

    imgs = photos() if names is None else {k: load_photo(k) for k in names}
    if not imgs:
        raise DatasetNotFoundError("no bundled photos found; install matplotlib, scikit-image or scikit-learn")
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
        out.append(_square_crop(img, top, left, side, size))
    return torch.stack(out).clamp(0, 1)


def split_photos(held_out: int = 2) -> tuple[list[str], list[str]]:
    """The bundled photos' names split into training and held-out sets of whole photos (sorted by name, the last
    `held_out` held out): crops of a held-out photo never appear in training."""
    names = sorted(photo_paths())
    if not 0 < held_out < len(names):
        raise DatasetNotFoundError(f"cannot hold out {held_out} of the {len(names)} bundled photos ({names})")
    return names[:-held_out], names[-held_out:]


class PhotoCrops(torch.utils.data.Dataset):
    """Random square crops `(3, size, size)` in [0, 1] of whole bundled photos, with augmentation: a side of
    `scale` times the photo's shorter side, a horizontal flip, and brightness / contrast / saturation jitter of up
    to `jitter` (0 turns each off). Item `i` is the same every time (drawn from `seed` and `i`), so shuffled
    loaders, resumed runs and data-parallel ranks agree.

    Example:
        >>> train, held = split_photos(2)
        >>> crops = PhotoCrops(64, names=train, length=8)
        >>> crops[0].shape, len(crops)
        (torch.Size([3, 64, 64]), 8)
    """

    def __init__(self, size: int, *, names: list[str] | None = None, length: int = 1024,
                 scale: tuple[float, float] = (0.2, 0.6), flip: bool = True, jitter: float = 0.2, seed: int = 0
                 ) -> None:
        self.photos = photos() if names is None else {k: load_photo(k) for k in names}
        if not self.photos:
            raise DatasetNotFoundError("no bundled photos found; install matplotlib, scikit-image or scikit-learn")
        if not (isinstance(length, int) and length >= 1):
            raise SettingError(f"length must be a whole number >= 1; got {length!r}")
        self.keys = sorted(self.photos)
        self.size, self.length, self.scale, self.flip, self.jitter, self.seed = size, length, scale, flip, jitter, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.length:
            raise IndexError(i)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        img = self.photos[self.keys[i % len(self.keys)]]
        _, h, w = img.shape
        u = torch.rand(6, generator=gen).tolist()
        side = max(8, int((self.scale[0] + (self.scale[1] - self.scale[0]) * u[0]) * min(h, w)))
        top, left = int(u[1] * (h - side + 1)), int(u[2] * (w - side + 1))
        crop = _square_crop(img, top, left, side, self.size)
        if self.flip and torch.rand((), generator=gen) < 0.5:
            crop = crop.flip(-1)
        if self.jitter:
            b, c, s = (1 + self.jitter * (2 * torch.tensor(u[3:6]) - 1)).tolist()
            grey = crop.mean(0, keepdim=True)
            crop = grey + s * (crop - grey)  # saturation
            crop = crop.mean() + c * (crop - crop.mean())  # contrast
            crop = crop * b  # brightness
        return crop.clamp(0, 1)
