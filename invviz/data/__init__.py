"""Offline data: photos shipped inside installed packages."""

from .photos import load_photo, photo_paths, photos

__all__ = ["load_photo", "photo_paths", "photos"]
