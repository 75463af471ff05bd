"""The fine-tuning wrapper: make a pretrained model's latent decodable by the model itself (feature alignment),
while the model keeps its predictions.

Decoding (Farias & Maziero 2023, Algorithm 1) runs T alignment steps in logit space from a start image `r_0`,
`r <- r - tau_t d/dr 1/2 |z - E(sigmoid(r))|^2`, with `E` the latent of the wrapped network, so the network only ever
sees valid images; `r_0` and the step sizes `tau_t` are learned with the reconstruction loss (they are part of the
decoder, not of the network's predictions).

How the predictions are kept (`preserve`):

- `"projection"` — exact, for latents the rest of the network maps affinely to the output (the last spatial stage
  before a global-average-pool + linear head, or the pooled features themselves). The head's linear map `A` is
  measured once; the wrapped network's latent is `z = z_s - A+ A (z_s - z_o)`, the fine-tuned latent `z_s` with its
  component in the head's row space replaced by the original's `z_o`, so `A z = A z_o`: the outputs are the
  original's to float precision, whatever the fine-tuning does, and the decodable information lives in the head's
  null space. It costs a second pass through the frozen original up to the latent.
- `"distill"` — for any other latent: a KL distillation loss to the frozen original's outputs (and optionally a
  feature loss at the latent and an L2-SP anchor to the original weights) keeps the predictions approximately.

`"auto"` (the default) measures whether the head is affine and picks accordingly. Which parameters train
(`trainable`): `"encoder"` (the modules that run before the latent's output; the default), `"all"`, or `"lora"`
(low-rank adapters starting at zero, from the `peft` package, on the encoder's convolutions and linear layers).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, LayerNotFoundError, ModelTypeError, SettingError
from ..io import check_writable, load_checkpoint_state, save_checkpoint
from ..models.activations import double_differentiable, leaky_gradients
from ..models.capture import Capture, forward_events, resolve_layer
from ..models.loading import Normalize, Preprocessing, model_device
from ..models.probe import Probe, as_probe, image_size, model_dtype
from ..models.state import frozen_eval
from ..settings import ALIGN_LR, ALIGN_PRESERVE, ALIGN_STEPS, ALIGN_TRAINABLE, TrainSchedule
from ..training import distributed as ddp
from ..training import fit
from ..training.loop import batch_images
from ..validate import check_learning_rate, check_positive_int
from .core import align, check_schedule, clamp_input, initial_input

PRESERVE = ("auto", "projection", "distill")
TRAINABLE = ("encoder", "all", "lora")
POOLED_CANDIDATES = ("global_pool", "head.global_pool", "avgpool", "fc_norm", "head.fc_norm", "head.flatten",
                     "pre_logits", "head.pre_logits")


def default_latent_layer(model: nn.Module, purpose: str = "align") -> str:
    """A latent that decodes well, by the model's own description where it has one.

    `purpose="align"` (the wrapper): the last spatial feature stage (timm's `feature_info`; or a top-level module
    after it that still outputs a spatial map, such as EfficientNet's `bn2`), else the pooled features, else the
    last module whose output is a spatial map, else the output `""`. `purpose="invert"`
    (optimization-based inversion): the feature stage at stride 8 (a mid-level layer that still holds the image's
    layout), else the earliest stage past stride 4, else as for `"align"`.
    """
    names = dict(model.named_modules())
    info = getattr(model, "feature_info", None)
    stages = []
    if info is not None:
        try:
            stages = [(int(i["reduction"]), str(i["module"])) for i in info if str(i["module"]) in names]
        except (TypeError, KeyError):
            stages = []
    if purpose == "invert" and stages:
        at8 = [m for r, m in stages if r == 8]
        if at8:
            return at8[0]
        past4 = [m for r, m in stages if r > 4]
        return past4[0] if past4 else stages[-1][1]
    if stages:
        return _last_spatial_after(model, stages[-1][1])
    spatial = _spatial_modules(model)
    if purpose == "invert" and spatial:
        return spatial[min(len(spatial) - 1, max(0, len(spatial) // 2))]
    for name in POOLED_CANDIDATES:
        if name in names:
            return name
    return spatial[-1] if spatial else ""


def _layer_table(model: nn.Module):
    """`list_layers(model)` at the native size, or None for a model it cannot run."""
    from ..models.layers import list_layers

    try:
        return list_layers(model)
    except Exception:  # noqa: BLE001 - a model list_layers cannot run: no spatial default
        return None


def _is_map(row) -> bool:
    """A layer that outputs a spatial feature map (4D, channels first or last) in a single call."""
    return row.shape is not None and len(row.shape) == 4 and row.layout in ("NCHW", "NHWC") and row.calls == 1


def _last_spatial_after(model: nn.Module, stage: str) -> str:
    """The last top-level module that still outputs a spatial map and runs after `stage` (EfficientNet's `bn2`
    after its 1x1 head convolution, whose head is then a pool and a linear layer: a latent kept exactly by the
    projection), else `stage`."""
    table = _layer_table(model)
    order = [r.name for r in table or ()]
    if stage not in order:
        return stage
    names = dict(model.named_modules())
    later = [r.name for r in table[order.index(stage) + 1:]
             if "." not in r.name and _is_map(r) and _grid_of(r) > 1 and not isinstance(names[r.name], nn.Identity)
             and not stage.startswith(r.name + ".")]
    return later[-1] if later else stage


def _spatial_modules(model: nn.Module) -> list[str]:
    """Top-level-ish modules (direct children, or children of a single container) whose outputs are spatial maps
    (4D with a grid larger than 1), in forward order, from one no-gradient pass at the native size."""
    shallow = [r for r in _layer_table(model) or () if _is_map(r)]
    depth = min((r.name.count(".") for r in shallow), default=0)
    out = [r.name for r in shallow if r.name.count(".") <= depth + 1 and _grid_of(r) > 1]
    top = [n for n in out if n.count(".") == depth]
    return top if len(top) >= 2 else out


def _grid_of(row) -> int:
    if row.layout == "NCHW":
        return row.shape[2] * row.shape[3]
    return row.shape[1] * row.shape[2]


MIN_STEP = 0.0  # calibrate()'s floor on the step sizes (0: the plain line search; benchmarks/README.md)


class FeatureAligned(nn.Module):
    """A model whose latent at `layer` can be decoded by the model itself, with its predictions kept.

    Args:
        model: any image model; copied (the user's model is never changed).
        layer: the latent layer (default :func:`default_latent_layer`); any layer, spatial or pooled.
        steps, tau: the alignment schedule: T steps (default 2, chosen on Fashion-MNIST against T = 1 at the same
            training steps: `benchmarks/fa_wrapper_fashion.py`, figures in benchmarks/README.md), each with its own
            step size (initial
            value `tau`; learned when `learn_tau`, and set by a line search on the first training batch).
        init, init_scale, seed: `r_0` before learning: `"zeros"` (a grey image), `"gaussian"` or `"uniform"`
            noise times `init_scale`; learned when `learn_r0`.
        size: the image size `(H, W)` decoded (default: the model's native input size).
        preserve: `"auto"`, `"projection"` (exact, for affine heads) or `"distill"`; see the module docstring.
        trainable: `"encoder"` (default), `"all"` or `"lora"` (`lora_rank`, needs `pip install peft`).
        preprocessing, layouts: override the model's normalization, or a layer's layout.
        leak: while decoding, ReLUs and ReLU6s pass `leak` times the gradient where they are off (forward values
            unchanged; :func:`invviz.models.activations.leaky_gradients`). At a flat start image most units of a
            deep ReLU network are off (`benchmarks/fa_lite0_diagnosis.py` counts them), and plain steps hear only
            from the rest.
            Default 0 (the paper's plain gradient); tried on Lite0 without a measured gain (benchmarks/README.md).

    `state_dict()` holds the fine-tuned model, `r_0` and the step sizes; the frozen original (the teacher) is kept
    outside it, and :meth:`load` reads a saved wrapper back into `FeatureAligned(same_original_model)`.

    Example:
        >>> from invviz.models.zoo import FashionResNet
        >>> w = FeatureAligned(FashionResNet(width=8), "layer3")
        >>> w.preserve, w.encode(torch.rand(2, 1, 28, 28)).shape
        ('projection', torch.Size([2, 1568]))
    """

    def __init__(self, model: nn.Module | Probe, layer: str | None = None, *, steps: int = ALIGN_STEPS, tau: float = 1.0,
                 learn_tau: bool = True, init: str = "zeros", init_scale: float = 0.1, learn_r0: bool = True,
                 seed: int = 0, size: int | tuple[int, int] | None = None, preserve: str = ALIGN_PRESERVE,
                 trainable: str = ALIGN_TRAINABLE, lora_rank: int = 8, preprocessing: Preprocessing | None = None,
                 layouts: dict[str, str] | None = None, leak: float = 0.0) -> None:
        super().__init__()
        given = as_probe(model, preprocessing=preprocessing, layouts=layouts)
        model = given.model
        check_schedule(steps, tau)
        if preserve not in PRESERVE:
            raise SettingError(f"preserve must be one of {PRESERVE}; got {preserve!r}")
        if trainable not in TRAINABLE:
            raise SettingError(f"trainable must be one of {TRAINABLE}; got {trainable!r}")
        self.layer = default_latent_layer(model) if layer is None else layer
        if not isinstance(self.layer, str):
            raise LayerNotFoundError(f"a layer is named by a string (see invviz.list_layers); got {self.layer!r}")
        resolve_layer(model, self.layer)
        self.prep = given.preprocessing
        self.layouts = dict(given.layout_overrides)
        self.model = copy.deepcopy(model)
        teacher = copy.deepcopy(model).eval()
        teacher.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: not trained, not saved
        self.normalize = Normalize(self.prep)
        self.steps, self.init = steps, init
        if not (isinstance(leak, (int, float)) and 0 <= leak <= 1):
            raise SettingError(f"leak must be a number in [0, 1] (the gradient ReLUs pass where off); got {leak!r}")
        self.leak = float(leak)
        self.size = self.prep.input_size[1:] if size is None else image_size(size)
        self.size = (int(self.size[0]), int(self.size[1]))
        self.channels = int(self.prep.input_size[0])
        r0 = initial_input((1, self.channels, *self.size), init, rng=torch.Generator().manual_seed(seed)) * init_scale
        self.r0 = nn.Parameter(r0, requires_grad=learn_r0)
        self.log_tau = nn.Parameter(torch.full((steps,), math.log(tau)), requires_grad=learn_tau)
        self.to(device=model_device(model), dtype=model_dtype(model))
        self.preserve = self._resolve_preserve(preserve)
        self.trainable = trainable
        self._select_trainable(trainable, lora_rank)

    # -- the parts ---------------------------------------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        return self._teacher

    @property
    def taus(self) -> torch.Tensor:
        return self.log_tau.exp()

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """What the network receives for images in [0, 1]: normalized, resized for one-size models."""
        return self._probe(self._teacher, [""], True).model_input(images)

    def _probe(self, model: nn.Module, layers: list[str], freeze: bool) -> Probe:
        """One probe per network (the trained copy, the teacher), kept so its layouts are found once; a view of it
        per (layers, freezing)."""
        cache = self.__dict__.setdefault("_probes", {})
        root = cache.get(id(model))
        if root is None or root.model is not model:
            root = cache[id(model)] = Probe(model, preprocessing=self.prep, layouts=self.layouts)
        key = (id(model), tuple(layers), freeze)
        if key not in cache or cache[key].model is not model:
            cache[key] = root.reading(layers, freeze=freeze)
        return cache[key]

    def _head_jacobian(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The head's linear map `A (m, d)` from the flat latent to the outputs, and the flat latent at a probe
        image, if the head is affine (checked on random latents); else None."""
        net = self._teacher
        device = model_device(net)
        x = torch.full((1, self.channels, *self.size), 0.5, device=device)
        with torch.no_grad():
            z0 = self._probe(net, [self.layer], True).latent(x)  # (1, d)
        probe = self._probe(net, [self.layer, ""], True)
        with probe, torch.no_grad():
            raw = probe(x, raw=True)
            layout = probe.layout(self.layer)
        if layout.kind not in ("NCHW", "vector") or raw[self.layer].flatten(1).shape != z0.shape:
            return None  # the flat raw latent must be the feature latent for the projection

        def head(z: torch.Tensor) -> torch.Tensor:
            return _run_with_latent(net, self.layer, self.model_input(x).expand(z.shape[0], -1, -1, -1), z,
                                    raw[self.layer].shape[1:])

        with frozen_eval(net):
            scale = z0.abs().mean().clamp(min=1e-3)
            g = torch.Generator().manual_seed(0)
            d1, d2 = (torch.randn(z0.shape, generator=g).to(device) * scale for _ in range(2))
            with torch.no_grad():
                f = head(torch.cat([z0, z0 + d1, z0 + d2, z0 + d1 + d2]))
            second = (f[3] - f[1] - f[2] + f[0]).abs().max()
            if not float(second) <= 1e-4 * float(f.abs().max().clamp(min=1e-6)):
                return None
            zr = z0.clone().requires_grad_(True)
            out = head(zr)  # (1, m)

            def vjp(u: torch.Tensor) -> torch.Tensor:  # u (k, m) -> u A (k, d)
                return torch.stack([torch.autograd.grad(out[0], zr, v, retain_graph=True)[0][0] for v in u])

            a = self._head_from_modules(tuple(raw[self.layer].shape[1:]), out.shape[1], vjp)
            if a is None:  # the map measured row by row: one backward pass per output
                a = vjp(torch.eye(out.shape[1], device=device, dtype=out.dtype))
        return a.detach(), z0

    def _head_from_modules(self, raw_shape: tuple[int, ...], outputs: int, vjp) -> torch.Tensor | None:
        """The head's map read from its modules when it is a mean over positions and one linear layer (most
        classifiers' `global_pool` + `fc`): `A[k, c * HW + p] = W[k, c] / HW`; used only if it agrees with the
        measured map on random directions, else None."""
        head = self._head_modules()
        linears = [m for m in self._teacher.modules() if isinstance(m, nn.Linear)]
        linears = [m for m, s in zip(linears, [m for m in self.model.modules() if isinstance(m, nn.Linear)])
                   if id(s) in head]
        if len(linears) != 1 or linears[0].out_features != outputs or linears[0].in_features != raw_shape[0]:
            return None
        w = linears[0].weight.detach()
        positions = math.prod(raw_shape[1:]) if len(raw_shape) > 1 else 1
        a = (w[:, :, None] / positions).expand(-1, -1, positions).reshape(outputs, -1)
        u = torch.randn(2, outputs, generator=torch.Generator().manual_seed(1)).to(a)
        measured = vjp(u)
        if not torch.allclose(u @ a, measured, rtol=1e-3, atol=1e-5 * float(measured.abs().max().clamp(min=1e-6))):
            return None
        return a

    def _resolve_preserve(self, preserve: str) -> str:
        if preserve == "distill":
            return "distill"
        found = self._head_jacobian()
        if found is None:
            if preserve == "projection":
                raise SettingError(f"preserve='projection' needs a latent that the rest of the network maps affinely"
                                   f" to its output (the last stage before the pooling and linear head, or the"
                                   f" pooled features); {self.layer!r} is not one. Use preserve='distill'")
            return "distill"
        a, _ = found
        pinv = _pinv_wide(a)  # (d, m)
        self.register_buffer("head_a", a, persistent=False)
        self.register_buffer("head_pinv", pinv, persistent=False)
        return "projection"

    def _head_modules(self) -> set[int]:
        """ids of the modules that run only after the latent's output exists (the head); found once, by one
        forward pass, and kept."""
        if "_head_ids" in self.__dict__:
            return self.__dict__["_head_ids"]
        with frozen_eval(self.model):
            events = forward_events(self.model, self.model_input(
                torch.full((1, self.channels, *self.size), 0.5, device=model_device(self.model))))
        cut = next((i for i, e in enumerate(events) if e == ("end", self.layer)), len(events))
        before = {name for kind, name in events[:cut] if kind == "start"}
        modules = dict(self.model.named_modules())
        self.__dict__["_head_ids"] = {id(modules[name]) for kind, name in events[cut:]
                                      if kind == "start" and name not in before}
        return self.__dict__["_head_ids"]

    def _select_trainable(self, trainable: str, lora_rank: int) -> None:
        head = self._head_modules() if self.layer else set()
        head_params = {id(p) for m in self.model.modules() if id(m) in head for p in m.parameters(recurse=False)}
        if trainable == "lora":
            self._add_lora(lora_rank, head)
            return
        for p in self.model.parameters():
            frozen = (trainable == "encoder" or self.preserve == "projection") and id(p) in head_params
            p.requires_grad_(not frozen)

    def _add_lora(self, rank: int, head: set[int]) -> None:
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise SettingError("trainable='lora' uses the peft package: pip install peft") from None
        check_positive_int(rank, "lora_rank")
        targets = [name for name, m in self.model.named_modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in head
                   and (not isinstance(m, nn.Conv2d) or m.groups == 1)]
        if not targets:
            raise SettingError("no convolution or linear layer before the latent to put adapters on")
        self.model = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets),
                                             self.model)
        for name, p in self.model.named_parameters():
            p.requires_grad_("lora_" in name)

    # -- encoding and decoding ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def encoder(self, with_output: bool = False, train: bool = False) -> Iterator[Any]:
        """Yields `enc(images in [0, 1]) -> latent (B, d)` (and the outputs with `with_output`), the wrapped
        network's latent; one set of probes for every call in the block. `train` keeps the weights trainable."""
        layers = [self.layer, ""] if with_output and self.preserve == "distill" else [self.layer]
        student = self._probe(self.model, layers, freeze=not train)
        teacher = self._probe(self._teacher, [self.layer], True) if self.preserve == "projection" else None
        with contextlib.ExitStack() as stack:
            stack.enter_context(student)
            if teacher is not None:
                stack.enter_context(teacher)

            def enc(images: torch.Tensor):
                feats = student(images)
                z = feats[self.layer].flatten(1)
                if teacher is not None:
                    z = self._project(z, teacher(images)[self.layer].flatten(1))
                if not with_output:
                    return z
                return z, (feats[""].flatten(1) if "" in feats else None)
            yield enc

    def _project(self, z_s: torch.Tensor, z_o: torch.Tensor) -> torch.Tensor:
        """`z_s - A+ A (z_s - z_o)`: the head sees the original's latent; the rest is free."""
        delta = z_s - z_o
        return z_s - (delta @ self.head_a.T) @ self.head_pinv.T

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The latent `(B, d)` of images `(B, C, H, W)` in [0, 1]."""
        with self.encoder() as enc:
            return enc(images)

    def start(self, batch: int) -> torch.Tensor:
        """`r_0` for a batch `(B, C, H, W)` (pre-sigmoid)."""
        return self.r0.expand(batch, -1, -1, -1)

    def align_steps(self, enc, z: torch.Tensor, *, create_graph: bool, steps: int | None = None) -> torch.Tensor:
        """T alignment steps (:func:`invviz.align.align`, in logit space) from `r_0` towards latent `z (B, d)` with
        the learned per-step sizes and leaky activation gradients; returns `r_T` (pre-sigmoid)."""
        n = self.steps if steps is None else steps
        check_positive_int(n, "steps")
        with self.decoding():
            return align(enc, z, (z.shape[0], self.channels, *self.size), steps=n, tau=self.taus,
                         r0=self.start(z.shape[0]), create_graph=create_graph, link=torch.sigmoid)

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """The networks as the alignment steps see them: ReLUs pass `leak` times the gradient where they are off."""
        with leaky_gradients(self.model, self.leak), leaky_gradients(self._teacher, self.leak):
            yield

    def decode(self, z: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Images `(B, C, H, W)` in (0, 1) whose latent aligns with `z (B, d)`."""
        with self.encoder() as enc:
            r = self.align_steps(enc, z.detach(), create_graph=False, steps=steps)
        return torch.sigmoid(r).detach()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped network's outputs for images in [0, 1] (with the projection: the original's outputs)."""
        if self.preserve != "projection":
            return self.model(self.model_input(images))
        with torch.no_grad():
            z_o = self._probe(self._teacher, [self.layer], True).latent(images)
        project = {self.layer: lambda out: self._project(out.flatten(1), z_o).view_as(out)}
        with Capture(self.model, [], replace=project) as cap:
            return cap.forward(self.model_input(images))

    # -- training -------------------------------------------------------------------------------------------
    def losses(self, images: torch.Tensor, *, distill_weight: float = 1.0, recon_weight: float = 1.0,
               feature_weight: float = 0.0, anchor_weight: float = 0.0) -> dict[str, torch.Tensor]:
        """The training losses on a batch in [0, 1]: FA reconstruction (mean squared error per pixel), KL
        distillation to the original's outputs (distill mode), a feature loss at the latent, an L2-SP anchor."""
        x = clamp_input(images)
        with self.encoder(with_output=True, train=True) as enc:
            z, logits = enc(x)
            r = self.align_steps(lambda im: enc(im)[0], z, create_graph=True)
        recon = ((x - torch.sigmoid(r)) ** 2).mean()  # per pixel: the same scale at any size, batch and latent
        total = recon_weight * recon
        out = {"recon": recon.detach()}
        if self.preserve == "distill" and distill_weight:
            with torch.no_grad():
                target = self._teacher(self.model_input(x)).flatten(1)
            distill = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(target, -1), log_target=True,
                               reduction="batchmean")
            total = total + distill_weight * distill
            out["distill"] = distill.detach()
        if feature_weight:
            with torch.no_grad():
                z_o = self._probe(self._teacher, [self.layer], True).latent(x)
            feat = ((z - z_o) ** 2).sum(1).mean() / (z_o ** 2).sum(1).mean().clamp(min=1e-12)
            total = total + feature_weight * feat
            out["feature"] = feat.detach()
        if anchor_weight:
            anchor = sum(((p - p0) ** 2).sum() for p, p0 in self._anchored())
            total = total + anchor_weight * anchor
            out["anchor"] = anchor.detach()
        return {"loss": total, **out}

    def _anchored(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        original = dict(self._teacher.named_parameters())
        for name, p in self.model.named_parameters():
            if p.requires_grad and name in original:
                yield p, original[name].to(p.device)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, *, min_step: float = MIN_STEP) -> float:
        """Set the step sizes by a line search on `images`: for each step in turn, the `tau` (on a log grid over
        eight decades) with the lowest reconstruction error, but not below `min_step` times the step size that moves
        `r` by the remaining error (RMS, in logit space). Returns the mean squared error after.

        On a network whose gradient does not point at the image (a pretrained ImageNet model such as
        EfficientNet-Lite0: `benchmarks/fa_lite0_diagnosis.py`), the best step is the smallest on the grid,
        and a decoder whose steps are ~0 sends the encoder almost no training signal; `min_step > 0` keeps
        the steps large enough to learn from (tried on Lite0 without a gain, see benchmarks/README.md).
        """
        x = clamp_input(images)
        target = torch.logit(x)
        with self.encoder() as enc:
            z = enc(x)
            for t in range(self.steps):
                floor = 0.0
                if min_step > 0:
                    r = self.align_steps(enc, z, create_graph=False, steps=t) if t else self.start(len(x)).detach()
                    with self.decoding():  # the step direction: one step of size 1 of the one loop
                        g = r - align(enc, z, tuple(r.shape), tau=1.0, r0=r, link=torch.sigmoid)
                    floor = min_step * float((target - r).pow(2).mean().sqrt() / g.pow(2).mean().sqrt().clamp(
                        min=1e-30))
                errors = []
                for log_tau in torch.linspace(math.log(1e-4), math.log(1e4), 33):
                    self.log_tau[t] = max(float(log_tau), math.log(floor) if floor > 0 else -math.inf)
                    r = self.align_steps(enc, z, create_graph=False, steps=t + 1)
                    errors.append((float(((x - torch.sigmoid(r)) ** 2).mean()), float(self.log_tau[t])))
                best = min(errors)
                self.log_tau[t] = best[1]
        return best[0]

    # -- files ----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> str:
        """Weights only (read back with weights-only loading), with the settings to rebuild the wrapper."""
        return save_checkpoint(path, {"modules": {"wrapper": self.state_dict()}, "step": 0,
                                      "config": self.config()})

    def config(self) -> dict[str, Any]:
        return {"layer": self.layer, "steps": self.steps, "init": self.init, "size": list(self.size),
                "preserve": self.preserve, "trainable": self.trainable}

    def load(self, path: str | os.PathLike[str]) -> FeatureAligned:
        """Load weights saved by :meth:`save` or a training checkpoint of :func:`train_aligned`."""
        state = load_checkpoint_state(path)
        modules = state["modules"]
        own = modules.get("wrapper")
        if own is None:
            raise CheckpointError(f"{path} holds no FeatureAligned weights (modules: {sorted(modules)})")
        cfg = state.get("config") or {}
        for key in ("layer", "steps", "preserve"):
            if key in cfg and cfg[key] != getattr(self, key):
                raise CheckpointError(f"{path} was saved with {key}={cfg[key]!r} but this wrapper has"
                                      f" {key}={getattr(self, key)!r}; build FeatureAligned(model, {key}=...) to match")
        try:
            self.load_state_dict(own)
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not fit this wrapper: {str(err).splitlines()[0]}") from None
        return self


def _pinv_wide(a: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """The pseudo-inverse `(d, m)` of a wide matrix `a (m, d)`, `m <= d`, through the eigendecomposition of its
    `m x m` Gram matrix (in float64): `a+ = a^T V S^-2 V^T` over the singular values above `rtol` times the largest.
    The same as `torch.linalg.pinv(a, rtol=rtol)`, without an SVD of the wide matrix (a 1000 x 62720 head: seconds
    instead of minutes)."""
    ad = a.double()
    if ad.shape[0] > ad.shape[1]:
        return torch.linalg.pinv(ad, rtol=rtol).to(a.dtype)
    evals, evecs = torch.linalg.eigh(ad @ ad.T)
    keep = evals > (rtol ** 2) * evals.max().clamp(min=0)
    v = evecs[:, keep]
    return (ad.T @ (v / evals[keep]) @ v.T).to(a.dtype)


def _run_with_latent(model: nn.Module, layer: str, x: torch.Tensor, z: torch.Tensor, raw_shape: tuple[int, ...]
                     ) -> torch.Tensor:
    """The model's output when the latent layer's output is replaced by `z (B, d)` (reshaped to the raw shape)."""
    with Capture(model, [], replace={layer: lambda out: z.view(z.shape[0], *raw_shape)}) as cap:
        return cap.forward(x).flatten(1)


def train_aligned(wrapper: FeatureAligned, data: Iterable[Any] | str | os.PathLike[str], *,
                  schedule: TrainSchedule = TrainSchedule(), lr: float = ALIGN_LR, distill_weight: float = 1.0,
                  recon_weight: float = 1.0, feature_weight: float = 0.0, anchor_weight: float = 0.0,
                  decoder_lr: float | None = None, batch_size: int = 64,
                  checkpoint: str | os.PathLike[str] | None = None, resume: bool = True, amp: bool | None = None,
                  progress: bool = True, calibrate: bool = True) -> list[dict[str, float]]:
    """Fine-tune `wrapper` on images in [0, 1]: any DataLoader of tensors or `(images, labels)`, or an image folder.

    Adam(lr, betas (0.5, 0.999)) on the trainable parameters (see :class:`FeatureAligned`), `r_0` and the step sizes;
    the model stays in eval mode (BatchNorm statistics and dropout fixed); AMP (bfloat16 autocast) on CUDA by
    default; attention uses PyTorch's math kernel while training (fused attention kernels have no double
    backward). The step sizes are first set by a line search on the first batch (`calibrate`). `r_0` and the step
    sizes learn at `decoder_lr` (default: `lr`). The reconstruction loss is the mean squared error per pixel, so the
    weights of the other terms mean the same at any image size, batch and latent width. How long it trains, how
    often it saves and its seed are `schedule` (:class:`~invviz.training.TrainSchedule`, e.g.
    `TrainSchedule(max_steps=600)`). Runs unchanged under `torchrun` (see :func:`invviz.training.fit`). Returns the
    per-step losses.
    """
    if not isinstance(wrapper, FeatureAligned):
        raise ModelTypeError(f"train_aligned trains an invviz.align.FeatureAligned; wrap your model first:"
                             f" FeatureAligned(model); got {type(wrapper).__name__}")
    lr = check_learning_rate(lr)
    schedule = TrainSchedule.checked(schedule, "schedule")
    decoder_lr = lr if decoder_lr is None else check_learning_rate(decoder_lr, "decoder_lr")
    for name, w in (("distill_weight", distill_weight), ("recon_weight", recon_weight),
                    ("feature_weight", feature_weight), ("anchor_weight", anchor_weight)):
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise SettingError(f"{name} must be a finite number >= 0; got {w!r}")
    if checkpoint is not None:
        check_writable(checkpoint, "checkpoint")
    if isinstance(data, (str, os.PathLike)):
        from ..data import image_folder

        data = image_folder(data, size=wrapper.size, batch_size=batch_size, channels=wrapper.channels,
                            seed=schedule.seed)
    device = model_device(wrapper.model)
    amp = device.type == "cuda" if amp is None else amp
    decoder = [p for p in (wrapper.r0, wrapper.log_tau) if p.requires_grad]
    network = [p for p in wrapper.model.parameters() if p.requires_grad]
    if not decoder + network:
        raise SettingError("the wrapper has nothing to train (every parameter is frozen)")
    # r_0 and the step sizes live on their own scales (logits, log step sizes): their own learning rate
    groups = [g for g in ({"params": network, "lr": lr}, {"params": decoder, "lr": decoder_lr}) if g["params"]]
    opt = torch.optim.Adam(groups, betas=(0.5, 0.999))
    resuming = checkpoint is not None and resume and os.path.exists(checkpoint)

    def step(batch: Any, i: int) -> dict[str, torch.Tensor]:
        images = batch_images(batch, channels=wrapper.channels, size=wrapper.size).to(device)
        if i == 0 and calibrate and not resuming:
            wrapper.calibrate(ddp.all_gather_tensor(images))  # the whole global batch, on every rank alike
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = wrapper.losses(images, distill_weight=distill_weight, recon_weight=recon_weight,
                                 feature_weight=feature_weight, anchor_weight=anchor_weight)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return out

    from torch.nn.attention import SDPBackend, sdpa_kernel

    modes = [(m, m.training) for m in wrapper.modules()]
    wrapper.eval()  # BatchNorm statistics and dropout stay fixed while fine-tuning
    try:
        with sdpa_kernel([SDPBackend.MATH]), double_differentiable(wrapper.model), \
                double_differentiable(wrapper.teacher):
            return fit(step, data, modules={"wrapper": wrapper}, optimizers={"adam": opt}, schedule=schedule,
                       checkpoint=checkpoint, resume=resume, progress=progress, desc="feature alignment")
    finally:
        for m, mode in modes:
            m.training = mode
