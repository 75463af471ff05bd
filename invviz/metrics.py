"""Image and distribution metrics shared by the capabilities: PSNR, SSIM, Fréchet distance, pairwise diversity."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from .errors import ImageSizeError


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ImageSizeError(f"images must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() == 3:
        a, b = a[None], b[None]
    if a.dim() != 4:
        raise ImageSizeError(f"images must be (C, H, W) or (B, C, H, W); got {tuple(a.shape)}")
    return a.double(), b.double()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, `(B,)` (a scalar tensor for one `(C, H, W)` pair)."""
    squeeze = a.dim() == 3
    a, b = _pair(a, b)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-20)
    out = 10 * torch.log10(data_range ** 2 / mse)
    return out[0] if squeeze else out


def _gaussian_window(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = int(3.5 * sigma + 0.5)  # scikit-image's truncate=3.5 -> 11 taps for sigma=1.5
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, `(B,)`, mean over channels and valid positions.

    Gaussian window (sigma 1.5, 11 taps), K1 = 0.01, K2 = 0.03, population covariances; equal to
    `skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1, channel_axis=0)`, which is tested.
    """
    squeeze = a.dim() == 3
    a, b = _pair(a, b)
    c = a.shape[1]
    g = _gaussian_window(sigma, a.dtype, a.device)
    if min(a.shape[2:]) < g.numel():
        raise ImageSizeError(f"SSIM needs images of at least {g.numel()} px; got {tuple(a.shape[2:])}")
    wy = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    wx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wy, groups=c), wx, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    # skimage crops (window - 1) / 2 pixels of each border of the full-size map; the valid convolution did that
    out = s.mean(dim=(1, 2, 3))
    return out[0] if squeeze else out


def frechet_distance(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows `x (n, d)` and `y (m, d)` (as FID, on any features)."""
    x = np.asarray(torch.as_tensor(x).double().cpu())
    y = np.asarray(torch.as_tensor(y).double().cpu())
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ImageSizeError(f"Fréchet distance needs two sets of >= 2 feature rows of equal width; got"
                             f" {x.shape} and {y.shape}")
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = scipy.linalg.sqrtm(cx @ cy)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * np.trace(covmean))


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct rows of `x (n, d)` (a diversity measure)."""
    x = torch.as_tensor(x).double().flatten(1)
    n = x.shape[0]
    if n < 2:
        raise ImageSizeError(f"diversity needs at least 2 samples; got {n}")
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


__all__ = ["psnr", "ssim", "frechet_distance", "mean_pairwise_distance"]
