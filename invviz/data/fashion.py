"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (idx files, no download), and a loader for the
user's own data (a torchvision dataset or an image folder)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..errors import DatasetNotFoundError, InvvizError

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
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
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


def make_loader(data: Dataset | str | tuple[torch.Tensor, ...], *, batch_size: int = 64, shuffle: bool = True,
                size: int | None = None, seed: int = 0, num_workers: int = 0) -> DataLoader:
    """A DataLoader from tensors `(images, labels)`, a torchvision-style dataset, or an image-folder path
    (`root/class_x/img.png`, read with torchvision's `ImageFolder`, resized to `size`)."""
    if isinstance(data, tuple):
        data = TensorDataset(*data)
    elif isinstance(data, (str, os.PathLike)):
        import torchvision.transforms as T
        from torchvision.datasets import ImageFolder

        if not os.path.isdir(data):
            raise DatasetNotFoundError(f"no image folder at {data}")
        tf = [T.Resize(size), T.CenterCrop(size)] if size else []
        data = ImageFolder(os.fspath(data), transform=T.Compose([*tf, T.ToTensor()]))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed))
