"""Offline data: photos shipped inside installed packages, Fashion-MNIST from the Debian package, and the user's own
image files and folders."""

from .fashion import (
    FASHION_MNIST_CLASSES,
    DatasetNotFoundError,
    ImageFiles,
    fashion_mnist,
    image_folder,
    make_loader,
    read_idx,
)
from .photos import PhotoCrops, load_image, load_photo, photo_crops, photo_paths, photos, split_photos

__all__ = ["load_image", "load_photo", "photo_crops", "photo_paths", "photos", "PhotoCrops", "split_photos", "fashion_mnist", "image_folder",
           "ImageFiles", "make_loader", "read_idx", "FASHION_MNIST_CLASSES", "DatasetNotFoundError"]
