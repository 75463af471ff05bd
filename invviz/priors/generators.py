"""Image generators for generator priors (Nguyen et al. 2016, 2017): code `h (B, d)` -> RGB images in [0, 1].

:class:`DeePSiMFc6` is the fc6 generator of Dosovitskiy & Brox (2016), able to load a converted state dict from a
path the user gives; :class:`CompactGenerator` is small enough to train on a CPU in minutes. Both expose the same
interface, so the samplers take either, and :class:`GeneratorImage` turns one into an image parameterization of the
core's render loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ModelTypeError, ParameterizationError
from ..io import read_state_dict
from ..models.loading import model_device
from ..optvis.param import ImageParam

CAFFE_BGR_MEAN = (104.0, 117.0, 123.0)  # the ImageNet mean (BGR, 0-255) the fc6 generator's output is offset by


class ImageGenerator(nn.Module):
    """Base class: `forward(h (B, code_dim)) -> images (B, 3, S, S)` in [0, 1].

    `upper_bounds` (a buffer, `(code_dim,)` or None) holds the per-unit clipping bounds of the code (from the code
    statistics of training), used by the samplers.
    """

    code_dim: int
    image_size: int

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("upper_bounds", None)

    def set_code_bounds(self, upper: torch.Tensor) -> None:
        upper = torch.as_tensor(upper, dtype=torch.float32).flatten()
        if upper.numel() != self.code_dim:
            raise ParameterizationError(f"upper bounds need {self.code_dim} values; got {upper.numel()}")
        self.upper_bounds = upper.to(model_device(self))

    def check_code(self, h: torch.Tensor) -> torch.Tensor:
        if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[1] != self.code_dim:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ParameterizationError(f"{type(self).__name__} takes codes (B, {self.code_dim}); got {got}")
        if not h.dtype.is_floating_point:
            raise ParameterizationError(f"codes must be floating point; got dtype {h.dtype}")
        return h


class DeePSiMFc6(ImageGenerator):
    """The DeePSiM fc6 generator (Dosovitskiy & Brox 2016; the generator of DGN-AM and PPGN).

    Three FC(4096) layers, a reshape to 256 x 4 x 4, then up-convolutions to 256 x 256, LeakyReLU(0.3). Its raw
    output is BGR in 0-255 minus the ImageNet mean with an untrained border; `forward` converts to RGB in [0, 1]
    and centre-crops `crop` pixels per side (14 by default, giving 228 px). Parameter names follow the public PyTorch
    conversions (`defc7`, `defc6`, `defc5`, `deconv5_0`, `deconv5_1`, ..., `deconv0`); load one with
    :func:`load_generator_state`.
    """

    code_dim = 4096

    def __init__(self, crop: int = 14) -> None:
        super().__init__()
        self.crop = crop
        self.image_size = 256 - 2 * crop
        self.defc7 = nn.Linear(4096, 4096)
        self.defc6 = nn.Linear(4096, 4096)
        self.defc5 = nn.Linear(4096, 4096)
        self.deconv5_0 = nn.ConvTranspose2d(256, 256, 4, stride=2, padding=1)
        self.deconv5_1 = nn.ConvTranspose2d(256, 512, 3, stride=1, padding=1)
        self.deconv4_0 = nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1)
        self.deconv4_1 = nn.ConvTranspose2d(256, 256, 3, stride=1, padding=1)
        self.deconv3_0 = nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1)
        self.deconv3_1 = nn.ConvTranspose2d(128, 128, 3, stride=1, padding=1)
        self.deconv2 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.deconv1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv0 = nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1)
        self.register_buffer("bgr_mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        """The Caffe output: BGR, 0-255 minus the mean, 256 x 256 with the untrained border."""
        act = nn.functional.leaky_relu
        x = act(self.defc7(self.check_code(h)), 0.3)
        x = act(self.defc6(x), 0.3)
        x = act(self.defc5(x), 0.3).view(-1, 256, 4, 4)
        for layer in (self.deconv5_0, self.deconv5_1, self.deconv4_0, self.deconv4_1, self.deconv3_0,
                      self.deconv3_1, self.deconv2, self.deconv1):
            x = act(layer(x), 0.3)
        return self.deconv0(x)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bgr = self.raw(h) + self.bgr_mean
        rgb = bgr.flip(1) / 255.0
        c = self.crop
        if c:
            rgb = rgb[:, :, c:-c, c:-c]
        return rgb.clamp(0, 1)


class CompactGenerator(ImageGenerator):
    """A small up-convolutional generator for 32-128 px images that trains on a CPU in minutes.

    FC to `4 * width` x 4 x 4, then `log2(size / 4)` blocks of (nearest upsampling, 3x3 conv, BatchNorm,
    LeakyReLU 0.2), a 3x3 conv to RGB and a sigmoid.
    """

    def __init__(self, code_dim: int, size: int = 64, width: int = 64) -> None:
        super().__init__()
        if size not in (32, 64, 128):
            raise ParameterizationError(f"CompactGenerator makes 32, 64 or 128 px images; got {size}")
        self.code_dim, self.image_size = code_dim, size
        c = 4 * width
        self.fc = nn.Sequential(nn.Linear(code_dim, c * 16), nn.LeakyReLU(0.2))
        blocks: list[nn.Module] = []
        n_up = {32: 3, 64: 4, 128: 5}[size]
        for i in range(n_up):
            out = max(width // 2, c // 2) if i < n_up - 1 else width
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, out, 3, padding=1),
                       nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            c = out
        self.up = nn.Sequential(*blocks, nn.Conv2d(c, 3, 3, padding=1))
        self.width = width

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(self.check_code(h)).view(h.shape[0], -1, 4, 4)
        return torch.sigmoid(self.up(x))


def load_generator_state(generator: nn.Module, source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
                         strip_prefixes: tuple[str, ...] = ("G.", "generator.", "module.")) -> nn.Module:
    """Load a state dict (a path, read with weights-only loading or safetensors, or a mapping) into `generator`.

    Common wrapper prefixes are stripped. Keys or shapes that do not match are listed in a :class:`CheckpointError`.
    """
    if not isinstance(generator, nn.Module):
        raise ModelTypeError(f"load_generator_state needs the generator module first; got {type(generator).__name__}")
    if isinstance(source, Mapping):
        state = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        state = read_state_dict(source)
    else:
        raise ModelTypeError(f"generator weights are a file path or a state dict (a mapping of name -> tensor); got"
                             f" {type(source).__name__}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError("a state dict maps parameter names (str) to tensors")
    cleaned = {}
    for key, value in state.items():
        for prefix in strip_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        cleaned[key] = value
    own = generator.state_dict()
    missing = sorted(k for k in own if k not in cleaned and k != "upper_bounds")
    unexpected = sorted(k for k in cleaned if k not in own)
    wrong = sorted(f"{k}: {tuple(cleaned[k].shape)} != {tuple(own[k].shape)}" for k in own
                   if k in cleaned and own[k] is not None and tuple(cleaned[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(f"the state dict does not fit {type(generator).__name__}: missing keys {missing},"
                              f" unexpected keys {unexpected}, wrong shapes {wrong}")
    if "upper_bounds" in cleaned and cleaned["upper_bounds"] is not None:
        generator.upper_bounds = cleaned.pop("upper_bounds").float()
    generator.load_state_dict(cleaned, strict=False)
    return generator


class GeneratorImage(ImageParam):
    """An image parameterization whose free variables are generator codes: `image = resize(G(h))`.

    Plugs a generator into the core's render loop and objectives; the samplers of :mod:`invviz.priors` step `h`.
    """

    def __init__(self, generator: ImageGenerator, codes: torch.Tensor, size: int | None = None) -> None:
        codes = generator.check_code(torch.as_tensor(codes, dtype=torch.float32))
        super().__init__(size or generator.image_size, codes.shape[0], decorrelate=False)
        # not a submodule: the codes are the only free variables, and the generator stays where the user put it
        object.__setattr__(self, "generator", generator)
        self.codes = nn.Parameter(codes.clone())

    def forward(self) -> torch.Tensor:
        img = self.generator(self.codes)
        if tuple(img.shape[2:]) != self.size:
            img = F.interpolate(img, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return img
