"""Fine-tuning wrapper: make any pretrained model's latent decodable by the model itself (feature alignment).

The latent is a layer of the model (default: the pooled penultimate features). Decoding runs the alignment steps in
logit space, `E(r) = latent(normalize(sigmoid(r)))`, so the model only ever sees valid images; `r_0 = 0` is a grey
image. Training adds the FA reconstruction loss to a distillation loss towards the frozen original's outputs, so the
model keeps its behaviour.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import single_image
from ..errors import LayerNotFoundError
from ..models.capture import Capture, resolve_layer
from ..models.loading import Normalize, Preprocessing, model_device, preprocessing_of
from ..models.state import frozen_eval
from ..training import fit, load_checkpoint_state
from .core import align, check_schedule, initial_input

POOLED_CANDIDATES = ("global_pool", "head.global_pool", "avgpool", "fc_norm", "head.fc_norm", "head.flatten",
                     "pre_logits", "head.pre_logits")


def default_latent_layer(model: nn.Module) -> str:
    """The pooled penultimate features: the first of timm's/torchvision's pooling modules that exists."""
    names = dict(model.named_modules())
    for name in POOLED_CANDIDATES:
        if name in names:
            return name
    raise LayerNotFoundError(f"{type(model).__name__} has none of the usual pooled-feature modules"
                             f" {POOLED_CANDIDATES}; pass layer= a layer name from invviz.list_layers(model)")


class FeatureAligned(nn.Module):
    """A model whose latent at `layer` can be decoded by the model itself.

    Args:
        model: any image model; copied unless `copy=False` (then fine-tuning changes it in place).
        layer: the latent layer (default :func:`default_latent_layer`).
        steps, tau: the alignment schedule (T, step size).
        init, init_scale, seed: `r_0`, one fixed pattern (`"gaussian"`, `"uniform"` or `"zeros"`, times
            `init_scale`, from `seed`) used in training and decoding; see the note in `__init__` on why not zeros.
        size: the image size `(H, W)` decoded (default: the model's native input size).
        preprocessing: the model's normalization (default: detected).

    The frozen original (the distillation teacher) is kept outside the state dict; `state_dict()` holds only the
    fine-tuned model, so checkpoints are plain weights.
    """

    def __init__(self, model: nn.Module, layer: str | None = None, *, steps: int = 1, tau: float = 1.0,
                 init: str = "gaussian", init_scale: float = 0.1, seed: int = 0,
                 size: int | tuple[int, int] | None = None, copy_model: bool = True,
                 preprocessing: Preprocessing | None = None) -> None:
        super().__init__()
        check_schedule(steps, tau)
        self.layer = layer or default_latent_layer(model)
        resolve_layer(model, self.layer)
        self.prep = preprocessing or preprocessing_of(model)
        self.model = copy.deepcopy(model) if copy_model else model
        teacher = copy.deepcopy(model).eval()
        teacher.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: not trained, not saved
        self.normalize = Normalize(self.prep)
        self.steps, self.tau, self.init = steps, tau, init
        hw = size if size is not None else self.prep.input_size[1:]
        self.size = (hw, hw) if isinstance(hw, int) else tuple(hw)
        # r_0: one fixed pattern shared by training and decoding. A constant start cannot work from pooled features:
        # a convnet's gradient of a globally pooled latent at a constant image is the same at every interior pixel,
        # so the alignment steps could only ever produce flat images; a fixed random start breaks that symmetry.
        r0 = initial_input((1, 3, *self.size), init, generator=torch.Generator().manual_seed(seed)) * init_scale
        self.register_buffer("r0", r0)
        self.to(model_device(model))

    @property
    def teacher(self) -> nn.Module:
        return self._teacher

    @contextmanager
    def encoder(self, with_output: bool = False):
        """Yields `enc(images in [0, 1]) -> latent (B, d)` (and the logits with `with_output`) through one capture."""
        layers = [self.layer, ""] if with_output else [self.layer]
        with Capture(self.model, layers) as cap:
            def enc(images: torch.Tensor):
                feats = cap.run(self.normalize(images), raw=True)
                z = feats[self.layer].flatten(1)
                return (z, feats[""]) if with_output else z
            yield enc

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with self.encoder() as enc:
            return enc(images)

    def decode(self, z: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Images `(B, 3, H, W)` in (0, 1) whose latent aligns with `z (B, d)` (T steps from `r_0`, sigmoid)."""
        with self.encoder() as enc, frozen_eval(self.model):
            r = align(lambda r: enc(torch.sigmoid(r)), z.detach(), (z.shape[0], 3, *self.size),
                      steps=steps or self.steps, tau=self.tau, r0=self.start(z.shape[0]))
        return torch.sigmoid(r).detach()

    def losses(self, images: torch.Tensor, *, distill_weight: float = 1.0, recon_weight: float = 1.0
               ) -> dict[str, torch.Tensor]:
        """FA reconstruction loss (per-image pixel sum of squares, batch mean) + KL distillation to the teacher."""
        x = images.clamp(0.01, 0.99)
        with self.encoder(with_output=True) as enc:
            z, logits = enc(x)
            r = align(lambda r: enc(torch.sigmoid(r))[0], z, tuple(x.shape), steps=self.steps, tau=self.tau,
                      create_graph=True, r0=self.start(x.shape[0]))
        recon = ((x - torch.sigmoid(r)) ** 2).flatten(1).sum(1).mean()
        with torch.no_grad():
            target = self.teacher(self.normalize(x))
        distill = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(target, -1), log_target=True,
                           reduction="batchmean")
        total = recon_weight * recon + distill_weight * distill
        return {"loss": total, "recon": recon.detach(), "distill": distill.detach()}

    def start(self, batch: int) -> torch.Tensor:
        """`r_0` for a batch: the fixed start pattern, repeated."""
        return self.r0.expand(batch, -1, -1, -1).clone()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(images))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Weights only (safetensors-compatible tensors in a torch file; read back with weights_only loading)."""
        from ..training import save_checkpoint

        save_checkpoint(path, {"modules": {"model": self.model.state_dict()}, "step": 0,
                               "config": {"layer": self.layer, "steps": self.steps, "tau": self.tau,
                                          "init": self.init, "size": list(self.size)}, "r0": self.r0})

    def load(self, path: str | os.PathLike[str]) -> FeatureAligned:
        from ..errors import CheckpointError

        state = load_checkpoint_state(path)
        try:
            self.model.load_state_dict(state["modules"]["model"])
        except (RuntimeError, KeyError) as err:
            raise CheckpointError(f"{path} does not fit this model: {err}") from err
        return self


def train_aligned(wrapper: FeatureAligned, loader: Iterable[Any], *, epochs: int = 1, max_steps: int | None = None,
                  lr: float = 1e-4, distill_weight: float = 1.0, recon_weight: float = 1.0,
                  checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 200,
                  resume: bool = True, amp: bool | None = None, progress: bool = True, seed: int = 0
                  ) -> list[dict[str, float]]:
    """Fine-tune `wrapper.model` on batches of images in [0, 1] (tensors or `(images, labels)` tuples).

    Adam(lr, betas (0.5, 0.999)) as the authors; AMP (bfloat16 autocast) on CUDA by default; the model stays in eval
    mode (BatchNorm statistics and dropout fixed). Returns the per-step losses.

    Adam moves every weight by about `lr` per step, even where the distillation gradient is only float noise: on
    the pretrained EfficientNet-Lite0, distillation alone at `lr=1e-4` dropped held-out top-1 agreement with the
    original to 67% in 30 steps (`benchmarks/fa_wrapper_lite0.py --steps 30 --recon 0`). Use a small `lr` (1e-5 kept
    89% over 300 FA steps) and check the agreement on held-out data.
    """
    device = model_device(wrapper.model)
    amp = device.type == "cuda" if amp is None else amp
    params = [p for p in wrapper.model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    # eval mode throughout: BatchNorm statistics and dropout stay fixed while a few photos fine-tune the weights
    wrapper.model.eval()

    def step(batch: Any, _: int) -> dict[str, torch.Tensor]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = images.to(device)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = wrapper.losses(images, distill_weight=distill_weight, recon_weight=recon_weight)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return out

    return fit(step, loader, modules={"model": wrapper.model}, optimizers={"adam": opt}, epochs=epochs,
               max_steps=max_steps, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
               seed=seed, progress=progress, desc="feature alignment")


def image_batch(image: torch.Tensor) -> torch.Tensor:
    """One image `(3, H, W)` or a batch `(B, 3, H, W)` in [0, 1], checked."""
    if image.dim() == 4 and image.shape[0] > 1:
        return torch.cat([single_image(im) for im in image])
    return single_image(image)
