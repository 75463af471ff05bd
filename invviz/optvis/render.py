"""The render loop: optimize a parameterized image so that an objective grows."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import DeviceError, DeviceMemoryError, ImageSizeError, NonFiniteError, ParameterizationError, SettingError
from ..models.capture import Layout
from ..models.loading import Preprocessing
from ..models.probe import Probe, as_probe, image_size
from ..settings import DEFAULT_RECIPE, RECIPES, RENDER_PARAM, RENDER_SIZE, Recipe
from ..training import schedule
from ..validate import check_learning_rate, check_positive_int
from .objectives import IMAGE, Objective, as_objective
from .param import ImageParam, make_param
from .relu import redirect_relus
from .transforms import Compose, Transform, make_transforms

NAN_CHECK_EVERY = 16  # steps between finiteness checks on accelerators (each check synchronizes)


@dataclasses.dataclass
class RenderResult:
    """What a render returns.

    Attributes:
        images: the final images `(B, 3, H, W)` in [0, 1], on the CPU.
        history: the objective per step and batch element `(steps, B)`, measured on transformed images.
        final: the objective per batch element `(B,)` measured on the untransformed final images.
        snapshots: `{step: images (B, 3, H, W)}` for the steps asked for (0 is the initial image).
        objective: the objective that was maximized.
        seconds: wall time of the optimization loop.
        monitored: `{name: (steps, B)}` values of the `monitor` objectives at each step (same images).
        importance: with `importance=True`, the accumulated magnitude of the objective's gradient on the image
            over the steps `(B, 1, H, W)`, scaled to [0, 1] per image (MaCo's transparency map); else None.
        preprocessing: the normalization the model was differentiated with (its `source` says where it came from).
    """

    images: torch.Tensor
    history: torch.Tensor
    final: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    objective: Objective
    seconds: float
    monitored: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    importance: torch.Tensor | None = None
    preprocessing: Preprocessing | None = None

    @property
    def steps_per_second(self) -> float:
        return self.history.shape[0] / self.seconds if self.seconds > 0 else float("inf")

    def save(self, path: str | os.PathLike[str], nrow: int | None = None, *, alpha: bool = False) -> str:
        """Write the images as one PNG grid (atomically); with `alpha`, the importance map as transparency."""
        from ..plotting import save_grid

        if alpha and self.importance is None:
            raise SettingError("this render has no importance map; render with importance=True to save alpha")
        return save_grid(self.images, path, nrow, alpha=self.importance if alpha else None)

    def show(self, titles: Sequence[str] | None = None, *, alpha: bool = False):
        """Show the images with matplotlib (with `alpha`, over the importance map); returns the figure."""
        from ..plotting import show_images

        return show_images(self.images, titles, alpha=self.importance if alpha else None)

    def __repr__(self) -> str:
        final = ", ".join(f"{v:.3g}" for v in self.final.tolist()[:8])
        return (f"RenderResult(images={tuple(self.images.shape)}, steps={self.history.shape[0]},"
                f" final=[{final}{', ...' if self.final.numel() > 8 else ''}], objective={self.objective!r})")


def _snapshot_steps(snapshots: Sequence[int], steps: int) -> set[int]:
    try:
        want = {int(s) for s in snapshots}
    except (TypeError, ValueError):
        raise SettingError(f"snapshots must be step numbers (ints); got {snapshots!r}") from None
    bad = sorted(s for s in want if not 0 <= s <= steps)
    if bad:
        raise SettingError(f"snapshot steps must lie in 0..{steps} (0 is the initial image); got {bad}")
    return want


def recipe_of(recipe: str | Recipe) -> Recipe:
    """A :class:`Recipe` by name (`"fast"`, `"lucid"`) or as given; a typed error otherwise."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str) and recipe in RECIPES:
        return RECIPES[recipe]
    raise SettingError(f"unknown recipe {recipe!r}; use one of {sorted(RECIPES)} or an invviz.settings.Recipe")


def render(
    model: nn.Module | Probe,
    objective: Objective,
    param: ImageParam,
    *,
    transforms: Transform | None = None,
    steps: int | None = None,
    lr: float | None = None,
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    rng: torch.Generator | None = None,
    preprocessing: Preprocessing | None = None,
    snapshots: Sequence[int] = (),
    progress: bool = False,
    layouts: dict[str, Layout] | None = None,
    monitor: dict[str, Objective] | None = None,
    importance: bool = False,
    redirected_relu: int = 0,
    callback: Callable[[int, torch.Tensor], bool | None] | None = None,
    lr_schedule: str | None = None,
    recipe: str | Recipe = "lucid",
) -> RenderResult:
    """Maximize `objective` over `param`'s free variables; the model is left exactly as it was.

    The low-level loop: `transforms` are used as given (None: none), and `steps`, `lr`, `lr_schedule` left at None
    come from `recipe` (here Lucid's, `"lucid"`: 512 steps of Adam 0.05 at a constant rate; :func:`visualize`
    defaults to the fast recipe).

    Each step: image = param() -> transforms -> the probe (resize for one-size models, normalization, the capture
    of the objective's layers; the forward stops after the deepest one) -> objective (B,) -> the optimizer on -sum.
    Weights are frozen for the render (backward computes input gradients only) and the model is in eval mode; both
    are restored after, and the capture removes its hooks, even on error. An objective that reads only the image
    (e.g. `total_variation()`) runs without the model.

    `monitor` names objectives evaluated without gradient on the same features every step (e.g. a class
    probability while the logit is optimized); their values come back in `RenderResult.monitored`. A closure
    optimizer (L-BFGS) or a sampler optimizer (:mod:`invviz.priors`) replaces Adam through `optimizer`.
    `redirected_relu=N` lets gradient through ReLU modules that are off during the first N steps (Lucid's
    redirected ReLU), `importance` accumulates MaCo's transparency map, and `callback(step, values)` is called
    after every step (return True to stop early: the result then has fewer steps). `lr_schedule="cosine"` lets
    Adam's rate fall along half a cosine from `lr` to `lr / 20` over the steps (`"constant"`: Lucid's).
    """
    base = as_probe(model, preprocessing=preprocessing, layouts=layouts)
    model = base.model
    rec = recipe_of(recipe)
    steps = rec.steps if steps is None else steps
    lr = rec.lr if lr is None else lr
    lr_schedule = rec.lr_schedule if lr_schedule is None else lr_schedule
    if not isinstance(objective, Objective):
        raise ParameterizationError(f"render needs an invviz.optvis Objective; got {type(objective).__name__}")
    if not isinstance(param, ImageParam):
        raise ParameterizationError(f"render needs an invviz.optvis ImageParam; got {type(param).__name__}")
    check_positive_int(steps, "steps")
    if optimizer is None:
        lr = check_learning_rate(lr)
    if not isinstance(redirected_relu, int) or redirected_relu < 0:
        raise SettingError(f"redirected_relu must be a number of steps >= 0; got {redirected_relu!r}")
    want = _snapshot_steps(snapshots, steps)
    monitor = dict(monitor or {})
    net_layers = list(dict.fromkeys(
        name for obj in (objective, *monitor.values()) for name in obj.layers if name != IMAGE))
    probe = base.reading(net_layers) if net_layers else None
    device = base.device
    dtype = probe.dtype if probe is not None else torch.float32
    param = param.to(device=device, dtype=dtype)
    tf = transforms if transforms is not None else Compose([])
    opt = optimizer(list(param.parameters())) if optimizer else torch.optim.Adam(param.parameters(), lr=lr)
    if lr_schedule not in ("constant", "cosine"):
        raise SettingError(f"lr_schedule must be 'constant' or 'cosine'; got {lr_schedule!r}")
    sched = None
    if lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: schedule.cosine(1.0, 0.05, t, steps))
    watched: dict[str, list[torch.Tensor]] = {name: [] for name in monitor}
    shots: dict[int, torch.Tensor] = {}
    values: list[torch.Tensor] = []
    bad = torch.zeros((), dtype=torch.bool, device=device)
    acc: torch.Tensor | None = None

    def evaluate(image: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if probe is None:
            feats: dict[str, torch.Tensor] = {}
        else:
            if x.shape[-1] < 1 or x.shape[-2] < 1:
                raise ImageSizeError(f"the transforms left an image of {tuple(x.shape[2:])} px from"
                                     f" {tuple(image.shape[2:])}; use smaller jitter/scale or a larger size")
            try:
                feats = probe(x)  # a size the model cannot take is fitted by the probe (e.g. DLA, HRNet)
            except ImageSizeError as err:
                if tuple(x.shape[2:]) == tuple(image.shape[2:]):
                    raise
                raise ImageSizeError(f"{err} (The transforms turned the {tuple(image.shape[2:])} image into"
                                     f" {tuple(x.shape[2:])}: check their sizes too.)") from err.__cause__
        feats[IMAGE] = image
        with torch.no_grad():
            seen = {name: obj({k: f.detach() for k, f in feats.items()}) for name, obj in monitor.items()}
        return objective(feats), seen

    if 0 in want:
        with torch.no_grad():
            shots[0] = param().detach().cpu()
    if device.type == "cuda" and probe is not None:
        _check_fits(probe, param, tf, rng)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if probe is not None:
            stack.enter_context(probe)
        redirect = stack.enter_context(redirect_relus(model, active=redirected_relu > 0))
        bar = tqdm(range(steps), disable=not progress, desc="render", leave=False)
        for step in bar:
            redirect.enabled = step < redirected_relu
            last: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []

            def closure() -> torch.Tensor:
                # one evaluation; Adam calls it once per step, L-BFGS as often as its line search needs
                nonlocal acc
                opt.zero_grad(set_to_none=True)
                image = param()
                if importance and image.requires_grad:
                    image.retain_grad()
                vals, seen = evaluate(image, tf(image, rng))  # (B,)
                loss = -vals.sum()
                loss.backward()
                if importance and image.grad is not None:
                    g = image.grad.detach().abs().sum(1, keepdim=True)  # (B, 1, H, W)
                    acc = g if acc is None else acc + g
                last.append((vals.detach(), seen))  # noqa: B023 - used within this step
                return loss

            opt.step(closure)
            if sched is not None:
                sched.step()
            v, seen = last[-1]
            values.append(v)
            for name, val in seen.items():
                watched[name].append(val)
            bad |= ~torch.isfinite(v).all()
            if device.type == "cpu" or step % NAN_CHECK_EVERY == 0 or step == steps - 1:
                if bool(bad):
                    raise NonFiniteError(
                        f"the objective {objective!r} became NaN or infinite by step {step + 1}; lower the learning"
                        f" rate (now {lr}) or check the model's activations at {net_layers}"
                    )
            if progress and step % 25 == 0:
                bar.set_postfix(objective=f"{float(v.mean()):.4g}")
            if step + 1 in want:
                with torch.no_grad():
                    shots[step + 1] = param().detach().cpu()
            if callback is not None and callback(step, v):
                break
        seconds = time.perf_counter() - start
        redirect.enabled = False
        with torch.no_grad():
            image = param()
            final, _ = evaluate(image, image)
    if not torch.isfinite(final).all():
        raise NonFiniteError(f"the objective {objective!r} is NaN or infinite on the final image")
    history = torch.stack(values).float().cpu()
    _warn_if_stuck(history, objective, redirected_relu)
    imp = None
    if importance and acc is not None:
        imp = (acc / acc.flatten(1).amax(1).clamp(min=1e-30).view(-1, 1, 1, 1)).detach().cpu()
    return RenderResult(
        images=image.detach().float().cpu(), history=history,
        final=final.detach().float().cpu(), snapshots=shots, objective=objective, seconds=seconds,
        monitored={name: torch.stack(v).cpu() for name, v in watched.items() if v}, importance=imp,
        preprocessing=base.preprocessing,
    )


def batch_that_fits(per_image: float, free: float, margin: float = 0.9) -> int:
    """The largest batch whose memory `batch * per_image` (bytes) stays within `margin` of `free`."""
    return max(0, int(margin * free // max(per_image, 1.0)))


def _check_fits(probe: Probe, param: ImageParam, tf: Transform, rng) -> None:
    """Before the first step on CUDA: one forward and backward of the first image alone (the parameterization's
    batch element 0, transformed, through the probe) measures the memory one image of the render needs; a batch
    that would not fit in the device's free memory is a :class:`DeviceMemoryError` that names the batch that would."""
    device = probe.device
    free, _ = torch.cuda.mem_get_info(device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with probe:
        image = param()[:1].detach().requires_grad_(True)
        trial = None
        if rng is not None:  # the render's own draws must not move
            trial = torch.Generator()
            trial.set_state(rng.get_state())
        feats = probe(tf(image, trial))
        # the memory is the activations kept for the backward: any scalar of the objective's layers measures it
        sum(f.float().mean() for f in feats.values()).backward()
    per_image = torch.cuda.max_memory_allocated(device) - before
    del feats, image
    torch.cuda.empty_cache()
    fits = batch_that_fits(per_image, free)
    if param.batch > fits:
        raise DeviceMemoryError(
            f"a render of {param.batch} images needs about {param.batch * per_image / 2 ** 30:.2f} GiB on {device}"
            f" but {free / 2 ** 30:.2f} GiB are free: use batch={max(fits, 1)} (several calls), a smaller size, or"
            " free memory on the device")


def _warn_if_stuck(history: torch.Tensor, objective: Objective, redirected_relu: int) -> None:
    """Warn when batch elements' objectives never moved over the render, or were exactly zero at nearly every step
    (a unit that never activates gets no gradient): their images stay near the start image, a flat grey square,
    and say nothing about the unit."""
    if history.shape[0] < 2:
        return
    spread = history.amax(0) - history.amin(0)
    constant = spread <= 1e-6 * (1 + history.abs().amax(0))
    silent = (history == 0).float().mean(0) >= 0.8
    stuck = (constant | silent).nonzero().flatten().tolist()
    if not stuck:
        return
    fixes = ("redirected_relu=N (CLI: --redirected-relu N) to let gradient through ReLUs that are off"
             if not redirected_relu else "more redirected_relu steps")
    warnings.warn(f"the objective {objective!r} stayed flat for batch element(s) {stuck} (unchanged, or exactly 0 at"
                  " four steps in five): the unit does not respond to the image and gets no gradient, so its image"
                  f" is close to the start image (a grey square). Try {fixes}, a layer after the activation, or"
                  " another unit", stacklevel=3)


def visualize(
    model: nn.Module | Probe,
    layer: str | None,
    objective: object,
    *,
    steps: int | None = None,
    size: int | Sequence[int] = RENDER_SIZE,
    batch: int | None = None,
    param: str | ImageParam = RENDER_PARAM,
    transforms: str | Transform | Sequence[Transform] | None = None,
    lr: float | None = None,
    seed: int | None = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    snapshots: Sequence[int] = (),
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    preprocessing: Preprocessing | None = None,
    layouts: dict[str, Layout] | None = None,
    init: torch.Tensor | None = None,
    importance: bool = False,
    redirected_relu: int = 0,
    lr_schedule: str | None = None,
    recipe: str | Recipe = DEFAULT_RECIPE,
) -> RenderResult:
    """Feature visualization: render images that maximize `objective` at `layer` of `model`.

    Args:
        model: any timm/torchvision (or other) model taking `(B, 3, H, W)`, or a :class:`~invviz.Probe` of one
            (its preprocessing and layouts); it runs on its own device.
        layer: a layer name from `invviz.list_layers(model)` (e.g. `"layer3"`, `"blocks.4"`); None when
            `objective` is an Objective that names its layers.
        objective: a channel index (`7`), a list of channel indices (rendered one per batch element in one
            optimization), an objective (`invviz.optvis.channel(...) + ...`), or a callable on the layer's
            features `(B, C, H, W)` returning `(B,)`.
        recipe: how to optimize: `"fast"` (the default: Adam 0.1 falling along a cosine, the standard transforms'
            draws fused into one resampling, 384 steps; it reaches Lucid's quality sooner, benchmarks/README.md) or
            `"lucid"` (Lucid's exactly: Adam 0.05 constant, the standard transforms chained, 512 steps). `steps`,
            `lr`, `lr_schedule` and `transforms` given here override the recipe's.
        steps: optimization steps (default: the recipe's).
        size: image size, int or `(H, W)`.
        batch: images rendered together (default: the number of units, else 1).
        param: `"fft"` (spectral + colour decorrelation, Lucid's default), `"pixel"`, `"maco"`, `"cppn"`, or an
            ImageParam.
        transforms: `"standard"` (Lucid's), `"fused"` (Lucid's draws in one resampling at the render size),
            `"none"`, or transform modules (default: the recipe's).
        lr: Adam learning rate (default: the recipe's).
        seed: seeds the initial image and the transforms (same seed, same image on CPU); None for fresh randomness.
        progress: show a tqdm progress bar.
        device: where to render; must be the model's device (move the model with `model.to(device)`).
        snapshots: steps at which to keep a copy of the images (0: the initial image).
        optimizer: a factory `params -> torch.optim.Optimizer` replacing Adam(lr); closure optimizers such as
            `torch.optim.LBFGS` work (each step evaluates the objective as often as they ask).
        preprocessing: override the model's normalization and input size.
        layouts: override detected feature layouts, e.g. `{"stages.1": "NHWC"}`.
        init: start from this image `(3, H, W)` or `(B, 3, H, W)` in [0, 1] (pixel and FFT reproduce it exactly).
        importance: also return MaCo's transparency map (`RenderResult.importance`).
        redirected_relu: steps at the start with Lucid's redirected ReLU gradient.
        lr_schedule: `"constant"` (Lucid's) or `"cosine"` (from `lr` down to `lr / 20`) (default: the recipe's).

    Returns:
        RenderResult with `.images` `(B, 3, H, W)` in [0, 1], `.history`, `.final`, `.save(path)`, `.show()`.

    Example:
        >>> import torchvision, invviz
        >>> net = torchvision.models.resnet18()
        >>> result = invviz.visualize(net, "layer2", [0, 1], steps=4, size=32, progress=False)
        >>> tuple(result.images.shape)
        (2, 3, 32, 32)
    """
    probe = as_probe(model, preprocessing=preprocessing, layouts=layouts)
    rec = recipe_of(recipe)
    obj = as_objective(objective, layer)
    if batch is None:
        batch = len(objective) if isinstance(objective, (list, tuple, range)) else 1
        if init is not None and isinstance(init, torch.Tensor) and init.dim() == 4 and batch == 1:
            batch = init.shape[0]
    check_positive_int(batch, "batch")
    if device is not None:
        try:
            want = torch.device(device)
        except (RuntimeError, TypeError):
            raise DeviceError(f"unknown device {device!r}; use e.g. 'cpu' or 'cuda'") from None
        have = probe.device
        if want != have and not (want.type == have.type and want.index is None):
            raise DeviceError(f"device={str(want)!r} but the model is on {str(have)!r}; move it first with"
                              f" model.to({str(want)!r}), or leave device unset to render where the model is")
    hw = image_size(size)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SettingError(f"seed must be an int or None; got {seed!r}")
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    if rng is None:
        rng = torch.Generator()
        rng.seed()
    image_param = make_param(param, hw, batch, rng, init=init)
    if image_param.batch != batch:
        raise ParameterizationError(f"the parameterization renders {image_param.batch} images but batch={batch}")
    return render(
        probe, obj, image_param, transforms=make_transforms(rec.transforms if transforms is None else transforms),
        steps=steps, lr=lr, optimizer=optimizer, rng=rng, snapshots=snapshots, progress=progress, recipe=rec,
        importance=importance, redirected_relu=redirected_relu, lr_schedule=lr_schedule,
    )
