"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (idx files, no download), and a loader for the
user's own data (a torchvision dataset or an image folder)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..errors import DatasetNotFoundError, InvvizError, SettingError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def read_idx(path: str) -> np.ndarray:
    """An idx file (optionally gzipped) as a NumPy array (the format of MNIST and Fashion-MNIST)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise InvvizError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise InvvizError(f"{path} is truncated: {body.size} values for shape {dims}")
    return body.reshape(dims)


def fashion_mnist(split: str = "train", root: str = FASHION_MNIST_DIR, limit: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images `(N, 1, 28, 28)` in [0, 1] and labels `(N,)` from the idx files under `root`."""
    prefix = {"train": "train", "test": "t10k"}.get(split) if isinstance(split, str) else None
    if prefix is None:
        raise SettingError(f"split must be 'train' or 'test'; got {split!r}")
    paths = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        cands = [os.path.join(root, f"{prefix}-{kind}{ext}") for ext in (".gz", "")]
        found = [p for p in cands if os.path.isfile(p)]
        if not found:
            raise DatasetNotFoundError(
                f"Fashion-MNIST {split} files not found under {root}; install them with"
                " `apt-get install dataset-fashion-mnist` or pass root= the folder holding the idx files")
        paths.append(found[0])
    images = torch.from_numpy(read_idx(paths[0])[:limit].copy()).float().div(255.0)[:, None]
    labels = torch.from_numpy(read_idx(paths[1])[:limit].astype(np.int64))
    return images, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


class ImageFiles(Dataset):
    """Every image file under a folder (recursively, sorted), as `(image (C, H, W) in [0, 1], label)`.

    Images are centre-cropped to the aspect of `size` and resized to it; the label is the index of the file's
    sub-folder among the sorted sub-folders (0 for files directly in the folder), as torchvision's `ImageFolder`.
    """

    def __init__(self, root: str | os.PathLike[str], size: int | tuple[int, int], channels: int = 3) -> None:
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise DatasetNotFoundError(f"no image folder at {root!r}")
        self.files = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names
                            if f.lower().endswith(IMAGE_SUFFIXES))
        if not self.files:
            raise DatasetNotFoundError(f"{root!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        classes = sorted({os.path.relpath(os.path.dirname(f), root).split(os.sep)[0] for f in self.files})
        self.classes = [c for c in classes if c != "."]
        self.root, self.size, self.channels = root, size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from .photos import load_image

        path = self.files[i]
        top = os.path.relpath(os.path.dirname(path), self.root).split(os.sep)[0]
        label = self.classes.index(top) if top in self.classes else 0
        return load_image(path, self.size, channels=self.channels), label


def image_folder(root: str | os.PathLike[str], *, size: int | tuple[int, int], batch_size: int = 64,
                 channels: int = 3, shuffle: bool = True, seed: int = 0, num_workers: int = 0) -> DataLoader:
    """A DataLoader of `(images (B, C, H, W) in [0, 1], labels)` from every image under `root` (see
    :class:`ImageFiles`); shuffled from `seed` (reshuffled per epoch by :func:`invviz.training.fit`)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SettingError(f"batch_size must be an int >= 1; got {batch_size!r}")
    return DataLoader(ImageFiles(root, size, channels), batch_size=batch_size, shuffle=shuffle,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(seed))


def make_loader(data: Dataset | str | tuple[torch.Tensor, ...], *, batch_size: int = 64, shuffle: bool = True,
                size: int | None = None, seed: int = 0, num_workers: int = 0) -> DataLoader:
    """A DataLoader from tensors `(images, labels)`, a torchvision-style dataset, or an image-folder path (every
    image under it, resized to `size`; see :func:`image_folder`)."""
    if isinstance(data, tuple):
        data = TensorDataset(*data)
    elif isinstance(data, (str, os.PathLike)):
        if size is None:
            raise SettingError("an image folder needs size= (the images are resized to it)")
        data = ImageFiles(data, size)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed))
