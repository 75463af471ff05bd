"""The one path every method takes into a model: :class:`Probe`, images in [0, 1] -> features per layer.

Rendering, Grad-IFV, the samplers' class probes, feature alignment, inversion and attribution all go through it, so
what a model needs (its normalization, a resize where it takes one input size only, its dtype and device, frozen
weights and eval mode, the capture of its layers with their layouts, typed errors for inputs it cannot take) is
handled once for every method.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DeviceError, ImageSizeError, InvvizError, LayerNotFoundError, ModelTypeError, SettingError
from .capture import MODEL_INPUT_ERRORS, Capture, LayerLayout, Layout, resolve_layer
from .loading import Normalize, Preprocessing, model_device, preprocessing_of
from .state import frozen_eval

_WARNED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def check_model(model: object, what: str = "model") -> nn.Module:
    """`model` itself if it is a usable `nn.Module`; a typed error saying what to pass otherwise."""
    if isinstance(model, str):
        raise ModelTypeError(f"the {what} must be an nn.Module, not the name {model!r}; load it first with"
                             f" invviz.load_model({model!r})")
    if not isinstance(model, nn.Module):
        raise ModelTypeError(f"the {what} must be a torch nn.Module (e.g. from invviz.load_model or timm.create_model);"
                             f" got {type(model).__name__}")
    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    if first is not None and first.device.type == "meta":
        raise DeviceError(f"the {what} is on the 'meta' device (no weights); materialize it with"
                          " model.to_empty(device='cpu') and load its weights first")
    return model


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (float32 for a model with none)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def resolve_preprocessing(model: nn.Module, preprocessing: Preprocessing | None = None) -> Preprocessing:
    """`preprocessing`, else the model's own (:func:`preprocessing_of`); warns once per model when that is only
    ImageNet's default because the model carries none."""
    if preprocessing is not None:
        if not isinstance(preprocessing, Preprocessing):
            raise ModelTypeError(f"preprocessing must be an invviz.Preprocessing; got {type(preprocessing).__name__}")
        return preprocessing
    prep = preprocessing_of(model)
    if prep.source.startswith("default") and model not in _WARNED:
        _WARNED.add(model)
        warnings.warn(
            f"{type(model).__name__} carries no preprocessing (it was not made by invviz.load_model and has no timm"
            " pretrained_cfg), so invviz normalizes its inputs with ImageNet's mean/std; if it was trained otherwise,"
            " wrap it once, probe = invviz.Probe(model, preprocessing=invviz.Preprocessing(mean=..., std=...)),"
            " and pass the probe to any verb",
            UserWarning, stacklevel=3)
    return prep


def check_images(images: object, *, channels: int | None = 3, what: str = "images", batch: bool = True
                 ) -> torch.Tensor:
    """Images `(B, C, H, W)` (or one `(C, H, W)`) as a float tensor with values in [0, 1]; typed errors otherwise.

    uint8 images, normalized images (values outside [0, 1]), NaN or infinite values and a wrong channel count are
    each named with their fix.
    """
    if not isinstance(images, torch.Tensor):
        raise ImageSizeError(f"{what} must be a torch tensor (B, C, H, W) with values in [0, 1]; got"
                             f" {type(images).__name__} (invviz.data.load_photo reads a file as one)")
    x = images[None] if images.dim() == 3 and batch else images
    if x.dim() != 4:
        raise ImageSizeError(f"{what} must be (B, C, H, W) or one image (C, H, W); got shape {tuple(images.shape)}")
    if not x.dtype.is_floating_point:
        hint = " (divide uint8 images by 255)" if x.dtype == torch.uint8 else ""
        raise ImageSizeError(f"{what} must be floating point with values in [0, 1]; got dtype {x.dtype}{hint}")
    if channels is not None and x.shape[1] != channels:
        fix = (" (repeat a grey image: images.expand(-1, 3, -1, -1))" if x.shape[1] == 1 and channels == 3 else
               " (convert to grey: images.mean(1, keepdim=True))" if channels == 1 and x.shape[1] == 3 else "")
        raise ImageSizeError(f"{what} have {x.shape[1]} channel(s) but the model takes {channels}{fix}; got shape"
                             f" {tuple(x.shape)}")
    if x.numel() == 0:
        raise ImageSizeError(f"{what} are empty: shape {tuple(x.shape)}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ImageSizeError(f"{what} contain NaN or infinite values ({int((~finite).sum())} of {x.numel()})")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        hint = (" — they look normalized (mean/std already applied): pass images in [0, 1]; invviz normalizes with"
                " the model's own preprocessing" if lo < -0.05 else " (clamp them with images.clamp(0, 1))")
        raise ImageSizeError(f"{what} must have values in [0, 1]; got [{lo:.3g}, {hi:.3g}]{hint}")
    return x


def image_size(size: object, what: str = "size") -> tuple[int, int]:
    """`(H, W)` from an int or a pair of ints (each >= 1); a typed error for anything else."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        h = w = int(size)
    elif (isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size)):
        h, w = (int(v) for v in size)
    else:
        raise SettingError(f"{what} must be an int or a pair (H, W) of ints, e.g. 128 or (128, 160); got {size!r}")
    if h < 1 or w < 1:
        raise SettingError(f"{what} must be positive; got {size!r}")
    return h, w


class Probe:
    """Images in [0, 1] -> features `(B, C, H, W)` of chosen layers of a model.

    It owns, for every method: the model's preprocessing (normalization inside the forward), the resize for models
    that take one input size only (and, for models that take only multiples of a stride, to the nearest such
    size), the model's dtype and device, frozen weights and eval mode (restored after, with `freeze=False` for
    training), the capture of the layers (one :class:`Capture`, its layouts decided from the modules), error
    translation (an input shape the model cannot take is an :class:`ImageSizeError` naming the size it takes),
    and the channel count of a layer.

    Use it as a context manager for many calls (one capture for all of them), or call it directly for one.

    Args:
        model: any image model `(B, C, H, W) -> ...`.
        layers: a layer name or names (`""` is the model's output).
        preprocessing: override the model's normalization and input size.
        layouts: override detected layouts, e.g. `{"stages.1": "NHWC"}`.
        freeze: freeze the weights while open (False for training through the probe).
        eval_mode: put the model in eval mode while open.
        resize: resize inputs to the native size for models that take one size only.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.resnet18()
        >>> with Probe(net, ["layer2", "layer3"], preprocessing=Preprocessing()) as probe:
        ...     feats = probe(torch.rand(2, 3, 64, 64))
        >>> feats["layer3"].shape, probe.channels("layer2")
        (torch.Size([2, 256, 4, 4]), 128)
    """

    built = 0  # probes made from a bare model so far (views made by `reading` are not counted); see tests

    def __init__(self, model: nn.Module, layers: str | Iterable[str] = (), *,
                 preprocessing: Preprocessing | None = None, layouts: Mapping[str, Layout] | None = None,
                 freeze: bool = True, eval_mode: bool = True, resize: bool = True) -> None:
        self.model = check_model(model)
        if layouts is not None and not isinstance(layouts, Mapping):
            raise SettingError(f"layouts must map layer names to layouts, e.g. {{'stages.1': 'NHWC'}}; got"
                               f" {type(layouts).__name__}")
        self.layers = self._check_layers(layers)
        self.preprocessing = resolve_preprocessing(self.model, preprocessing)
        self.layout_overrides = dict(layouts or {})
        self.freeze, self.eval_mode, self.resize = freeze, eval_mode, resize
        self.device, self.dtype = model_device(self.model), model_dtype(self.model)
        self.normalize = Normalize(self.preprocessing).to(self.device, self.dtype)
        self._stack: contextlib.ExitStack | None = None
        self._cap: Capture | None = None
        self._ok_shapes: set[tuple[int, ...]] = set()  # input shapes the model took, shared by every view
        # sizes the model could not take -> the nearest it takes, and the multiple that worked (found once, shared)
        self._fitted: dict[tuple[int, ...], tuple[int, int]] = {}
        self._multiple: list[int] = []
        self._layout_cache: dict = {}  # layouts per input shape, kept across openings and shared by every view
        self._last_layouts: dict[str, LayerLayout] = {}
        self._clone = True
        Probe.built += 1

    def _check_layers(self, layers: str | Iterable[str]) -> list[str]:
        names = [layers] if isinstance(layers, str) else list(layers)
        for name in names:
            if not isinstance(name, str):
                raise LayerNotFoundError(f"a layer is named by a string like 'layer3' or 'blocks.4' (see"
                                         f" invviz.list_layers(model)); got {name!r} ({type(name).__name__})")
            resolve_layer(self.model, name.rpartition("@")[0] if "@" in name else name)
        return list(dict.fromkeys(names))

    def reading(self, layers: str | Iterable[str], *, freeze: bool | None = None, in_graph: bool = False) -> Probe:
        """This probe reading `layers`: the same model, preprocessing, layouts and layout cache (what one probe
        learned about the model serves every verb), with its own capture when opened. `in_graph` returns the
        layers' own outputs rather than copies, so gradients of later outputs can be taken with respect to them."""
        view = copy.copy(self)
        view.layers = self._check_layers(layers)
        view.freeze = self.freeze if freeze is None else freeze
        view._clone = not in_graph
        view._stack, view._cap, view._last_layouts = None, None, {}
        return view

    # -- opening ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Probe:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(frozen_eval(self.model, freeze=self.freeze, eval_mode=self.eval_mode))
            # the probe words the model's complaints itself, with the size the model takes
            self._cap = stack.enter_context(Capture(self.model, self.layers, layouts=self.layout_overrides,
                                                    cache=self._layout_cache, clone=self._clone,
                                                    translate_errors=False))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cap is not None and self._cap.layouts:
            self._last_layouts = dict(self._cap.layouts)
        stack, self._stack, self._cap = self._stack, None, None
        if stack is not None:
            stack.close()

    def frozen(self, *, freeze: bool | None = None):
        """The probe's eval-mode (and freezing) for a block that runs the model itself (e.g. captum's own hooks),
        restored after: `with probe.frozen(freeze=False): ...`."""
        return frozen_eval(self.model, freeze=self.freeze if freeze is None else freeze, eval_mode=self.eval_mode)

    @property
    def is_open(self) -> bool:
        return self._stack is not None

    @property
    def channels_in(self) -> int:
        """Image channels the model takes (3 for RGB models)."""
        return int(self.preprocessing.input_size[0])

    @property
    def native_size(self) -> tuple[int, int]:
        return (int(self.preprocessing.input_size[1]), int(self.preprocessing.input_size[2]))

    # -- running ---------------------------------------------------------------------------------------------
    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """What the model receives for `images` `(B, C, H, W)` in [0, 1]: cast to its dtype and device, resized
        for one-size models, normalized."""
        x = images.to(device=self.device, dtype=self.dtype)
        if self.resize and self.preprocessing.fixed_input_size and tuple(x.shape[2:]) != self.native_size:
            x = F.interpolate(x, size=self.native_size, mode="bilinear", align_corners=False)
        elif tuple(x.shape[1:]) in self._fitted:  # a size the model cannot take: the nearest it takes
            x = F.interpolate(x, size=self._fitted[tuple(x.shape[1:])], mode="bilinear", align_corners=False)
        return self.normalize(x)

    def __call__(self, images: torch.Tensor, *, raw: bool = False) -> dict[str, torch.Tensor]:
        """Features `{layer: (B, C, H, W)}` of `images` `(B, C, H, W)` in [0, 1] (raw layer outputs with `raw`)."""
        if not self.is_open:
            with self:
                return self(images, raw=raw)
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ImageSizeError(f"a probe takes images (B, C, H, W); got "
                                 f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        if images.shape[1] != self.channels_in:
            raise ImageSizeError(f"images have {images.shape[1]} channel(s) but {type(self.model).__name__} takes"
                                 f" {self.channels_in}; got shape {tuple(images.shape)}")
        shape = tuple(images.shape[1:])
        x = self.model_input(images)
        if shape in self._ok_shapes or shape in self._fitted:
            return self._cap.run(x, raw=raw)
        try:
            out = self._cap.run(x, raw=raw)
        except InvvizError:
            raise
        except MODEL_INPUT_ERRORS as err:
            return self._fit_size(images, raw, err)
        self._ok_shapes.add(shape)
        return out

    def _fit_size(self, images: torch.Tensor, raw: bool, err: Exception) -> dict[str, torch.Tensor]:
        """Some models take only sizes that are multiples of their stride (skip connections that must line up, as
        in DLA and HRNet). For a size such a model cannot take, the probe resizes the images to the nearest multiple
        it takes, within a quarter of the size, and remembers the size for next time and the multiple to try first
        (a multiple that worked for one size need not for every size); otherwise the model's complaint becomes an :class:`ImageSizeError` naming the size the model takes."""
        h, w = images.shape[2:]
        if self.resize and not self.preprocessing.fixed_input_size:
            for m in dict.fromkeys(self._multiple + [8, 16, 32, 64]):  # the multiple that worked last, first
                hw = (max(m, round(h / m) * m), max(m, round(w / m) * m))
                if hw == (h, w) or abs(hw[0] - h) > h / 4 or abs(hw[1] - w) > w / 4:
                    continue
                key = tuple(images.shape[1:])
                self._fitted[key] = hw  # model_input resizes to it
                try:
                    out = self._cap.run(self.model_input(images), raw=raw)
                except BaseException as failed:
                    del self._fitted[key]
                    if isinstance(failed, InvvizError) or not isinstance(failed, MODEL_INPUT_ERRORS):
                        raise
                    continue
                self._multiple[:] = [m]
                return out
        raise ImageSizeError(self._size_message(images, err)) from err

    def _size_message(self, images: torch.Tensor, err: Exception) -> str:
        h, w = images.shape[2:]
        what = str(err).strip().splitlines()[0][:240] if str(err).strip() else type(err).__name__
        nh, nw = self.native_size
        text = str(err).lower()
        smaller = h < nh or w < nw
        small = (" (too small for the model's downsampling)" if smaller and any(
            k in text for k in ("kernel size", "output size", "too small", "smaller than"))
            or min(h, w) < min(nh, nw) // 4 else "")
        return (f"{type(self.model).__name__} could not take images of {h}x{w} px{small}: {type(err).__name__}:"
                f" {what}. Use a size the model takes, e.g. its native {nh}x{nw} (size={nh}).")

    def latent(self, images: torch.Tensor, layer: str | None = None, *, pool: bool = False) -> torch.Tensor:
        """One layer's features as vectors `(B, d)`: flattened `(B, C*H*W)`, or averaged over space `(B, C)`."""
        layer = self._one(layer)
        f = self(images)[layer]
        return f.mean(dim=(2, 3)) if pool else f.flatten(1)

    def _one(self, layer: str | None) -> str:
        if not self.layers:
            raise LayerNotFoundError("this probe reads no layer yet; read one with probe.reading('layer3')")
        if layer is None:
            if len(self.layers) != 1:
                raise LayerNotFoundError(f"this probe reads {self.layers}; name the layer")
            return self.layers[0]
        if layer not in self.layers:
            raise LayerNotFoundError(f"this probe reads {self.layers}, not {layer!r}")
        return layer

    # -- what the layers are ---------------------------------------------------------------------------------
    def layout(self, layer: str | None = None, size: int | Sequence[int] | None = None) -> LayerLayout:
        """The layout of `layer` (found with one forward without gradients at `size`, default the native size,
        if no call has run yet)."""
        layer = self._one(layer)
        if self._cap is not None and layer in self._cap.layouts and size is None:
            return self._cap.layouts[layer]
        if size is None and layer in self._last_layouts:
            return self._last_layouts[layer]
        hw = self.native_size if size is None else image_size(size)
        with torch.no_grad(), contextlib.ExitStack() as stack:
            if not self.is_open:
                stack.enter_context(self)
            self(torch.full((1, self.channels_in, *hw), 0.5, device=self.device))
            found = self._cap.layouts[layer]
        return found

    def channels(self, layer: str | None = None, size: int | Sequence[int] | None = None) -> int:
        """Feature channels of `layer`."""
        return self.layout(layer, size).channels


def as_probe(model: nn.Module | Probe, layers: str | Iterable[str] = (), *,
             preprocessing: Preprocessing | None = None, layouts: Mapping[str, Layout] | None = None) -> Probe:
    """The one way every verb takes a model: a :class:`Probe` passed in is used as it is (reading `layers`), a bare
    `nn.Module` gets one probe, with `preprocessing` and `layouts` if given (else the model's own)."""
    if isinstance(model, Probe):
        if preprocessing is not None or layouts is not None:
            raise SettingError("preprocessing= and layouts= belong to the Probe you passed; give them when you make"
                               " it: invviz.Probe(model, preprocessing=..., layouts=...)")
        return model.reading(layers) if layers else model
    return Probe(model, layers, preprocessing=preprocessing, layouts=layouts)


def features(model: nn.Module | Probe, layers: str | Iterable[str], images: torch.Tensor, **kwargs: Any
             ) -> dict[str, torch.Tensor]:
    """One-off features `{layer: (B, C, H, W)}` of `images` in [0, 1], without gradients (see :class:`Probe`)."""
    with torch.no_grad():
        return as_probe(model, layers, **kwargs)(check_images(images, channels=None))


__all__ = ["Probe", "as_probe", "features", "check_images", "check_model", "image_size", "model_dtype", "model_device",
           "resolve_preprocessing"]

