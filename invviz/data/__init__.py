"""Offline data: photos shipped inside installed packages, and Fashion-MNIST from the Debian package."""

from .fashion import FASHION_MNIST_CLASSES, DatasetNotFoundError, fashion_mnist, make_loader, read_idx
from .photos import load_photo, photo_crops, photo_paths, photos

__all__ = ["load_photo", "photo_crops", "photo_paths", "photos", "fashion_mnist", "make_loader", "read_idx",
           "FASHION_MNIST_CLASSES", "DatasetNotFoundError"]
