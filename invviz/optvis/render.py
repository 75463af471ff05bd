"""The render loop: optimize a parameterized image so that an objective grows."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import DeviceError, ImageSizeError, InvvizError, NonFiniteError, ParameterizationError
from ..models.capture import Capture, Layout
from ..models.loading import Normalize, Preprocessing, model_device, preprocessing_of
from ..models.state import frozen_eval
from .objectives import IMAGE, Objective, as_objective
from .param import ImageParam, make_param
from .transforms import Compose, Resize, Transform, make_transforms

NAN_CHECK_EVERY = 16  # steps between finiteness checks on accelerators (each check synchronizes)


@dataclasses.dataclass
class RenderResult:
    """What a render returns.

    Attributes:
        images: the final images `(B, 3, H, W)` in [0, 1], on the CPU.
        history: the objective per step and batch element `(steps, B)`, measured on transformed images.
        final: the objective per batch element `(B,)` measured on the untransformed final images.
        snapshots: `{step: images (B, 3, H, W)}` for the steps asked for.
        objective: the objective that was maximized.
        seconds: wall time of the optimization loop.
        monitored: `{name: (steps, B)}` values of the `monitor` objectives at each step (same images).
    """

    images: torch.Tensor
    history: torch.Tensor
    final: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    objective: Objective
    seconds: float
    monitored: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    @property
    def steps_per_second(self) -> float:
        return self.history.shape[0] / self.seconds if self.seconds > 0 else float("inf")

    def save(self, path: str | os.PathLike[str], nrow: int | None = None) -> str:
        """Write the images as one PNG grid; returns the path."""
        from ..plotting import save_grid

        return save_grid(self.images, path, nrow)

    def show(self, titles: Sequence[str] | None = None):
        """Show the images with matplotlib; returns the figure."""
        from ..plotting import show_images

        return show_images(self.images, titles)

    def __repr__(self) -> str:
        final = ", ".join(f"{v:.3g}" for v in self.final.tolist()[:8])
        return (f"RenderResult(images={tuple(self.images.shape)}, steps={self.history.shape[0]},"
                f" final=[{final}{', ...' if self.final.numel() > 8 else ''}], objective={self.objective!r})")


def render(
    model: nn.Module,
    objective: Objective,
    param: ImageParam,
    *,
    transforms: Transform | None = None,
    steps: int = 512,
    lr: float = 0.05,
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    generator: torch.Generator | None = None,
    preprocessing: Preprocessing | None = None,
    snapshots: Sequence[int] = (),
    progress: bool = False,
    layouts: dict[str, Layout] | None = None,
    monitor: dict[str, Objective] | None = None,
) -> RenderResult:
    """Maximize `objective` over `param`'s free variables; the model is left exactly as it was.

    Each step: image = param() -> transforms -> (resize for fixed-size models) -> normalization -> capture the
    objective's layers (the forward stops after the deepest one) -> objective (B,) -> Adam on -sum. Weights are
    frozen for the render (backward computes input gradients only) and the model is in eval mode; both are
    restored after, and the capture removes its hooks, even on error.

    `monitor` names objectives evaluated without gradient on the same features every step (e.g. a class
    probability while the logit is optimized); their values come back in `RenderResult.monitored`. A closure
    optimizer (L-BFGS) or a sampler optimizer (:mod:`invviz.priors`) replaces Adam through `optimizer`.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ParameterizationError(f"steps must be a positive int; got {steps!r}")
    prep = preprocessing or preprocessing_of(model)
    device = model_device(model)
    param = param.to(device)
    normalize = Normalize(prep).to(device)
    tf = transforms if transforms is not None else Compose([])
    if prep.fixed_input_size:
        tf = Compose([tf, Resize(prep.input_size[1:])])
    final_resize = Resize(prep.input_size[1:]) if prep.fixed_input_size else Compose([])
    opt = optimizer(list(param.parameters())) if optimizer else torch.optim.Adam(param.parameters(), lr=lr)
    monitor = dict(monitor or {})
    net_layers = list(dict.fromkeys(
        name for obj in (objective, *monitor.values()) for name in obj.layers if name != IMAGE))
    watched: dict[str, list[torch.Tensor]] = {name: [] for name in monitor}
    want = set(int(s) for s in snapshots)
    shots: dict[int, torch.Tensor] = {}
    values: list[torch.Tensor] = []
    bad = torch.zeros((), dtype=torch.bool, device=device)

    def evaluate(image: torch.Tensor, x: torch.Tensor, cap: Capture, step: int
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        try:
            feats = cap.run(normalize(x))
        except (RuntimeError, AssertionError, ValueError) as err:
            if step > 0 or isinstance(err, InvvizError):
                raise
            raise ImageSizeError(
                f"{type(model).__name__} could not take images of shape {tuple(x.shape)} ({type(err).__name__}:"
                f" {err}); render at a size the model accepts (its native input is {prep.input_size[1:]}), e.g."
                f" size={prep.input_size[1]}"
            ) from err
        feats[IMAGE] = image
        with torch.no_grad():
            seen = {name: obj({k: f.detach() for k, f in feats.items()}) for name, obj in monitor.items()}
        return objective(feats), seen

    start = time.perf_counter()
    with frozen_eval(model), Capture(model, net_layers, layouts=layouts) as cap:
        bar = tqdm(range(steps), disable=not progress, desc="render", leave=False)
        for step in bar:
            last: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []

            def closure() -> torch.Tensor:
                # one evaluation; Adam calls it once per step, L-BFGS as often as its line search needs
                opt.zero_grad(set_to_none=True)
                image = param()
                vals, seen = evaluate(image, tf(image, generator), cap, step)  # (B,)
                loss = -vals.sum()
                loss.backward()
                last.append((vals.detach(), seen))
                return loss

            opt.step(closure)
            v, seen = last[-1]
            values.append(v)
            for name, val in seen.items():
                watched[name].append(val)
            bad |= ~torch.isfinite(v).all()
            if device.type == "cpu" or step % NAN_CHECK_EVERY == 0 or step == steps - 1:
                if bool(bad):
                    raise NonFiniteError(
                        f"the objective {objective!r} became NaN or infinite by step {step + 1}; lower lr (now"
                        f" {lr}) or check the model's activations at {net_layers}"
                    )
            if progress and step % 25 == 0:
                bar.set_postfix(objective=f"{float(v.mean()):.4g}")
            if step + 1 in want:
                with torch.no_grad():
                    shots[step + 1] = param().detach().cpu()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            image = param()
            final, _ = evaluate(image, final_resize(image), cap, 1)
    if not torch.isfinite(final).all():
        raise NonFiniteError(f"the objective {objective!r} is NaN or infinite on the final image")
    return RenderResult(
        images=image.detach().cpu(), history=torch.stack(values).cpu(), final=final.detach().cpu(),
        snapshots=shots, objective=objective, seconds=seconds,
        monitored={name: torch.stack(v).cpu() for name, v in watched.items() if v},
    )


def visualize(
    model: nn.Module,
    layer: str | None,
    objective: object,
    *,
    steps: int = 512,
    size: int | Sequence[int] = 128,
    batch: int | None = None,
    param: str | ImageParam = "fft",
    transforms: str | Transform | Sequence[Transform] | None = "standard",
    lr: float = 0.05,
    seed: int | None = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    snapshots: Sequence[int] = (),
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    preprocessing: Preprocessing | None = None,
    layouts: dict[str, Layout] | None = None,
) -> RenderResult:
    """Feature visualization: render images that maximize `objective` at `layer` of `model`.

    Args:
        model: any timm/torchvision (or other) model taking `(B, 3, H, W)`; it runs on its own device.
        layer: a layer name from `invviz.list_layers(model)` (e.g. `"layer3"`, `"blocks.4"`); None when
            `objective` is an Objective that names its layers.
        objective: a channel index (`7`), a list of channel indices (rendered one per batch element in one
            optimization), an objective (`invviz.optvis.channel(...) + ...`), or a callable on the layer's
            features `(B, C, H, W)` returning `(B,)`.
        steps: optimization steps.
        size: image size, int or `(H, W)`.
        batch: images rendered together (default: the number of units, else 1).
        param: `"fft"` (spectral + colour decorrelation, Lucid's default), `"pixel"`, `"maco"`, or an ImageParam.
        transforms: `"standard"` (Lucid's), `"none"`, or transform modules.
        lr: Adam learning rate.
        seed: seeds the initial image and the transforms (same seed, same image on CPU); None for fresh randomness.
        progress: show a tqdm progress bar.
        device: where to render; must be the model's device (move the model with `model.to(device)`).
        snapshots: steps at which to keep a copy of the images.
        optimizer: a factory `params -> torch.optim.Optimizer` replacing Adam(lr); closure optimizers such as
            `torch.optim.LBFGS` work (each step evaluates the objective as often as they ask).
        preprocessing: override the model's normalization and input size.
        layouts: override detected feature layouts, e.g. `{"stages.1": "NHWC"}`.

    Returns:
        RenderResult with `.images` `(B, 3, H, W)` in [0, 1], `.history`, `.final`, `.save(path)`, `.show()`.

    Example:
        >>> import torchvision, invviz
        >>> net = torchvision.models.resnet18()
        >>> result = invviz.visualize(net, "layer2", [0, 1], steps=4, size=32, progress=False)
        >>> tuple(result.images.shape)
        (2, 3, 32, 32)
    """
    obj = as_objective(objective, layer)
    if batch is None:
        batch = len(objective) if isinstance(objective, (list, tuple, range)) else 1
    if device is not None and torch.device(device) != model_device(model):
        want, have = torch.device(device), model_device(model)
        if not (want.type == have.type and want.index is None):
            raise DeviceError(f"device={str(want)!r} but the model is on {str(have)!r}; move it first with"
                              f" model.to({str(want)!r}), or leave device unset to render where the model is")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    image_param = make_param(param, size, batch, generator)
    if image_param.batch != batch:
        raise ParameterizationError(f"the parameterization renders {image_param.batch} images but batch={batch}")
    return render(
        model, obj, image_param, transforms=make_transforms(transforms), steps=steps, lr=lr, optimizer=optimizer,
        generator=generator, preprocessing=preprocessing, snapshots=snapshots, progress=progress, layouts=layouts,
    )
