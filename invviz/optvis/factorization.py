"""Building blocks (Olah et al. 2018, "The Building Blocks of Interpretability"): factor a layer's activations on an
image with non-negative matrix factorization into `k` spatial maps and `k` channel directions, and visualize each
direction — what the network sees where, in `k` groups of neurons."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import ObjectiveError
from ..models.probe import Probe, as_probe, check_images


@dataclasses.dataclass
class Factorization:
    """The result of :func:`factorize`.

    Attributes:
        maps: the spatial factors `(k, H, W)` (how much each group is present at each position).
        directions: the channel factors `(k, C)` (the groups, as directions in the layer).
        reconstruction_error: `|A - maps directions|_F` of the activations `A (H*W, C)` (scikit-learn's
            `reconstruction_err_`), and `relative_error` divided by `|A|_F`.
        images: the visualization of each direction `(k, 3, S, S)`, when asked for.
        image: the photo factored `(3, H0, W0)`.
    """

    maps: torch.Tensor
    directions: torch.Tensor
    reconstruction_error: float
    relative_error: float
    image: torch.Tensor
    images: torch.Tensor | None = None

    def figure(self, alpha: float = 0.6):
        """The photo with each spatial map over it (one panel per factor), above the factors' visualizations."""
        import matplotlib.pyplot as plt
        import torch.nn.functional as F

        k = self.maps.shape[0]
        rows = 2 if self.images is not None else 1
        fig, axes = plt.subplots(rows, k, figsize=(2.5 * k, 2.5 * rows), squeeze=False)
        photo = self.image.permute(1, 2, 0).clamp(0, 1).numpy()
        maps = F.interpolate(self.maps[:, None], size=self.image.shape[1:], mode="bilinear", align_corners=False)
        for i in range(k):
            m = maps[i, 0]
            axes[0, i].imshow(photo)
            axes[0, i].imshow((m / m.max().clamp(min=1e-12)).numpy(), cmap="magma", alpha=alpha)
            axes[0, i].set_title(f"factor {i}", fontsize=9)
            axes[0, i].set_axis_off()
            if self.images is not None:
                axes[1, i].imshow(self.images[i].permute(1, 2, 0).numpy())
                axes[1, i].set_axis_off()
        fig.tight_layout()
        return fig


def factorize(model: nn.Module | Probe, layer: str, image: torch.Tensor, k: int, *, visualize: bool = True,
              steps: int = 256, size: int = 96, seed: int = 0, max_iter: int = 500,
              progress: bool = False) -> Factorization:
    """NMF (scikit-learn's) of `layer`'s activations on one image `(3, H, W)` in [0, 1] into `k` factors.

    The activations `A (H*W, C)` must be non-negative (a layer after a ReLU); tiny negative values (< 1% of the
    mass) are clipped, more raise an :class:`ObjectiveError`. With `visualize`, each channel direction is rendered
    with the `direction` objective (`steps` steps at `size` px, one batch).

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18().eval()
        >>> f = factorize(net, "layer2", torch.rand(3, 64, 64), 3, visualize=False)
        >>> f.maps.shape, f.directions.shape
        (torch.Size([3, 8, 8]), torch.Size([3, 128]))
    """
    from sklearn.decomposition import NMF

    base = as_probe(model)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ObjectiveError(f"k (the number of factors) must be an int >= 1; got {k!r}")
    probe = base.reading([layer])
    x = check_images(image, channels=probe.channels_in, what="the image to factor")
    if x.shape[0] != 1:
        raise ObjectiveError(f"factorize takes one image; got a batch of {x.shape[0]}")
    with torch.no_grad():
        feats = probe(x)[layer][0].double().cpu()  # (C, H, W)
    c, h, w = feats.shape
    acts = feats.reshape(c, h * w).T  # (H*W, C)
    negative = float(acts.clamp(max=0).abs().sum() / acts.abs().sum().clamp(min=1e-30))
    if negative > 0.01:
        raise ObjectiveError(f"layer {layer!r} has negative activations ({100 * negative:.1f}% of the mass); NMF needs"
                             " non-negative ones: factor a layer after a ReLU")
    if k > min(acts.shape):
        raise ObjectiveError(f"k={k} factors need at least {k} positions and channels; the layer gives {h * w}"
                             f" positions and {c} channels")
    a = acts.clamp(min=0).numpy()
    nmf = NMF(n_components=k, init="nndsvda", max_iter=max_iter, random_state=seed)
    spatial = nmf.fit_transform(a)  # (H*W, k)
    directions = torch.from_numpy(nmf.components_).float()  # (k, C)
    maps = torch.from_numpy(spatial).float().T.reshape(k, h, w)
    norm_a = float((a ** 2).sum() ** 0.5)
    result = Factorization(maps=maps, directions=directions, reconstruction_error=float(nmf.reconstruction_err_),
                           relative_error=float(nmf.reconstruction_err_) / max(norm_a, 1e-30), image=x[0].cpu())
    if visualize:
        from .objectives import direction
        from .render import visualize as render_units

        result.images = render_units(base, None, direction(layer, directions), batch=k, steps=steps, size=size,
                                     seed=seed, progress=progress).images
    return result


__all__ = ["Factorization", "factorize"]
