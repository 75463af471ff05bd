"""DGN-AM and PPGN-h (Nguyen et al. 2016, 2017), batched over chains, as update rules on generator codes inside the core's render
loop: the generator is an image parameterization (:class:`GeneratorImage`), the objective any core objective.

DGN-AM: `h <- h + eta_t g / mean|g|`, clip to `[0, ub]`, `h <- decay * h`; `eta_t` falls linearly.
PPGN-h (the authors' `sampler.py`): `d = eps1 (R(h) - h) + eps2 g + N(0, eps3^2)`, `h <- h + eta_t d / mean|d|`,
clip to `[0, 30]`; `R` a prior on codes. The step normalizes the sum, so the eps weigh the terms against each other
(at the authors' eps1 = 1e-5 the prior matters only where the class gradient is small), and samples are kept along the
chain, every `save_every` steps where the class probability passes the threshold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DeviceError, ModelTypeError, ObjectiveError, UnitIndexError
from ..models.loading import model_device
from ..models.probe import Probe, as_probe
from ..models.state import frozen_eval
from ..optvis.objectives import Objective, as_objective, custom
from ..optvis.render import render
from ..settings import PPGNSettings
from ..training import schedule
from ..validate import check_positive_int
from .generators import GeneratorImage, ImageGenerator

Prior = Callable[[torch.Tensor], torch.Tensor]


def clip_codes(h: torch.Tensor, upper: float | torch.Tensor | None) -> torch.Tensor:
    """Clip codes to `[0, upper]` (`upper` a number or per-unit bounds `(d,)`; no upper bound when None)."""
    h = h.clamp(min=0.0)
    if upper is None:
        return h
    return torch.minimum(h, torch.as_tensor(upper, dtype=h.dtype, device=h.device).expand_as(h))


class CodeSampler(torch.optim.Optimizer):
    """The DGN-AM / PPGN-h step on codes `(chains, d)` as a closure optimizer for the render loop.

    The render loop minimizes `-objective`, so the ascent direction is `-grad`. The step (DGN-AM: the gradient;
    PPGN-h: the weighted sum of the prior, gradient and noise terms) is normalized per chain by its mean absolute
    value (the authors' normalization) and scaled by a rate falling linearly from `lr` to `lr_end`.
    """

    def __init__(self, params, *, steps: int, lr: float, lr_end: float, upper: float | torch.Tensor | None = None, decay: float = 1.0, prior: Prior | None = None,
                 eps1: float = 0.0, eps2: float = 1.0, eps3: float = 0.0, reset_every: int | None = None,
                 reset: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(params, {})
        self.steps, self.lr, self.lr_end = steps, lr, lr_end
        self.upper, self.decay = upper, decay
        self.prior, self.eps1, self.eps2, self.eps3 = prior, eps1, eps2, eps3
        self.reset_every, self.reset = reset_every, reset
        self.noise = generator
        self.t = 0

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        with torch.enable_grad():
            loss = closure()
        eta = schedule.linear(self.lr, self.lr_end, self.t, self.steps)
        for group in self.param_groups:
            for h in group["params"]:
                d = -h.grad
                if self.prior is not None:
                    noise = torch.randn(h.shape, generator=self.noise, dtype=h.dtype).to(h.device)
                    d = self.eps1 * (self.prior(h) - h) + self.eps2 * d + self.eps3 * noise
                h.add_(eta * d / d.abs().mean(dim=1, keepdim=True).clamp(min=1e-12))
                h.copy_(clip_codes(h, self.upper))
                if self.decay != 1.0:
                    h.mul_(self.decay)
                if self.reset_every and self.reset is not None and (self.t + 1) % self.reset_every == 0:
                    h.copy_(self.reset(h))
        self.t += 1
        return loss


@dataclasses.dataclass
class SamplerResult:
    """Images `(chains, 3, S, S)` in [0, 1] (the last of each chain), codes `(chains, d)`, the objective per step
    `(steps, chains)`, the class probability per step when a class was targeted, and which chains ended above the
    probability threshold (`kept`). PPGN-h with `save_every` also returns the samples kept along the chains
    (`samples` `(N, 3, S, S)`, with the step and chain each was taken at)."""

    images: torch.Tensor
    codes: torch.Tensor
    activation: torch.Tensor
    probability: torch.Tensor | None
    kept: torch.Tensor | None
    seconds: float
    samples: torch.Tensor | None = None
    sample_steps: torch.Tensor | None = None
    sample_chains: torch.Tensor | None = None
    preprocessing: object = None


def class_probability(unit: int) -> Objective:
    """Softmax probability of class `unit` from the model's output (a monitor, not for optimization)."""
    return custom("", lambda logits: F.softmax(logits.flatten(1), dim=1)[:, unit], name=f"p(class {unit})")


def class_log_probability(unit: int) -> Objective:
    """`log p(y = unit | x)`: the exact log-softmax objective of PPGN-h's exact mode."""
    return custom("", lambda logits: F.log_softmax(logits.flatten(1), dim=1)[:, unit], name=f"log p({unit})")


def authors_class_term(unit: int) -> Objective:
    """An objective whose gradient is `(1 - p) d logit / dx`, the authors' approximation of d log p / dx."""
    def fn(logits: torch.Tensor) -> torch.Tensor:
        z = logits.flatten(1)
        return (1 - F.softmax(z, dim=1)[:, unit]).detach() * z[:, unit]

    return custom("", fn, name=f"(1 - p) * logit({unit})")


def _initial_codes(generator: ImageGenerator, init: str | torch.Tensor, chains: int, gen: torch.Generator
                   ) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        codes = init.float()
        codes = generator.check_code(codes[None] if codes.dim() == 1 else codes)
        if not bool(torch.isfinite(codes).all()):
            raise ObjectiveError("initial codes must be finite (no NaN or infinity)")
        if codes.shape[0] not in (1, chains):
            raise ObjectiveError(f"{codes.shape[0]} initial codes for {chains} chains; pass one or one per chain")
        return codes.expand(chains, -1).clone() if codes.shape[0] == 1 else codes.clone()
    if init == "noise":
        return torch.randn(chains, generator.code_dim, generator=gen).abs()
    if init == "zeros":
        return torch.zeros(chains, generator.code_dim)
    raise ObjectiveError(f"init must be 'noise', 'zeros' or codes (chains, {generator.code_dim}); got {init!r}")


def _check_class(model_out_dim: int | None, unit: int) -> None:
    if model_out_dim is not None and not 0 <= unit < model_out_dim:
        raise UnitIndexError(f"class {unit} out of range: the model has {model_out_dim} outputs")


def _check_sampler_inputs(model: nn.Module | Probe, generator: object) -> tuple[Probe, ImageGenerator]:
    probe = as_probe(model)
    if not isinstance(generator, ImageGenerator):
        raise ModelTypeError(f"the generator must be an invviz.priors.ImageGenerator (CompactGenerator, DeePSiMFc6, or"
                             f" your subclass); got {type(generator).__name__}")
    return probe, generator


def _class_index(target: object) -> int:
    if isinstance(target, str):
        raise UnitIndexError(f"a class is given by its index (e.g. 285 for ImageNet's 'Egyptian cat'), not by name;"
                             f" got {target!r}")
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)) or (
            isinstance(target, torch.Tensor) and target.numel() != 1):
        raise UnitIndexError(f"a class is an int index, or pass an invviz.optvis objective; got {target!r}")
    return int(target)


def _sample(probe: Probe, generator: ImageGenerator, objective: Objective, codes: torch.Tensor, *,
            size: int | None, steps: int, sampler: Callable, monitor: dict[str, Objective], progress: bool,
            snapshots: Sequence[int] = ()) -> tuple[GeneratorImage, object]:
    if model_device(generator) != probe.device:
        raise DeviceError(f"the generator is on {model_device(generator)} but the model on {probe.device};"
                          " move one of them with .to(device)")
    param = GeneratorImage(generator, codes.to(probe.device), size)
    with frozen_eval(generator):
        result = render(probe, objective, param, transforms=None, steps=steps, optimizer=sampler, monitor=monitor,
                        progress=progress, snapshots=snapshots)
    return param, result


def _bounds(generator: ImageGenerator, upper: float | torch.Tensor | None) -> float | torch.Tensor | None:
    if upper is None and generator.upper_bounds is not None:
        return generator.upper_bounds.detach().cpu()
    return upper


def dgn_am(model: nn.Module | Probe, generator: ImageGenerator, objective: object, *, layer: str | None = None,
           steps: int = 200, lr: float = 8.0, lr_end: float = 1e-10, decay: float = 0.99,
           upper: float | torch.Tensor | None = None, init: str | torch.Tensor = "noise", chains: int = 1,
           size: int | None = None, seed: int = 0, monitor_class: int | None = None, progress: bool = False
           ) -> SamplerResult:
    """DGN-AM: maximize `objective` (a class logit `class_logit(c)`, a channel `int` of `layer`, any core
    objective) over the generator's code. Codes are clipped to `[0, upper]` (default the generator's code bounds).

    `lr` is eta_0, the mean absolute step per code unit at the start (falling linearly to `lr_end`); the authors'
    setting for class outputs is 8 and it uses 1-8 by layer. Scale it to the code's range: for hidden units of
    EfficientNet-Lite0 with its pooled features as the code (each in [0, 6]), 2 was chosen on held-out units (README).
    """
    probe, generator = _check_sampler_inputs(model, generator)
    check_positive_int(steps, "steps")
    check_positive_int(chains, "chains")
    if not lr > 0 or not lr_end >= 0 or not 0 < decay <= 1:
        raise ObjectiveError(f"need lr > 0, lr_end >= 0, 0 < decay <= 1; got {lr}, {lr_end}, {decay}")
    obj = as_objective(objective, layer)
    gen = torch.Generator().manual_seed(seed)
    codes = _initial_codes(generator, init, chains, gen)
    bound = _bounds(generator, upper)
    codes = clip_codes(codes, bound)

    def sampler(params):
        return CodeSampler(params, steps=steps, lr=lr, lr_end=lr_end, upper=bound, decay=decay)

    monitor = {} if monitor_class is None else {"p": class_probability(monitor_class)}
    param, res = _sample(probe, generator, obj, codes, size=size, steps=steps, sampler=sampler, monitor=monitor,
                         progress=progress)
    prob = res.monitored.get("p")
    return SamplerResult(images=res.images, codes=param.codes.detach().cpu(), activation=res.history,
                         probability=prob, kept=None, seconds=res.seconds, preprocessing=res.preprocessing)


def ppgn_h(model: nn.Module | Probe, generator: ImageGenerator, prior: Prior, target: int | Objective, *,
           settings: PPGNSettings = PPGNSettings(), steps: int = 200, upper: float | torch.Tensor | None = 30.0,
           init: str | torch.Tensor = "noise", chains: int = 1, reset_every: int | None = None,
           threshold: float = 0.9, save_every: int | None = None, size: int | None = None, seed: int = 0,
           progress: bool = False) -> SamplerResult:
    """PPGN-h: a Langevin-style chain on codes with prior `R` (a code DAE, or `E(G(h))`; see
    :mod:`invviz.priors.training`). `target` is a class index (then `settings.gradient="authors"` uses `(1 - p) d
    logit`, `"exact"` the log-softmax gradient) or any core objective for hidden units. `settings` holds the step's
    weights and rates (:class:`~invviz.priors.PPGNSettings`). Chains are reset to fresh noise every
    `reset_every` steps; `kept` marks chains whose final class probability is at least `threshold`.

    The defaults are the authors', for fc6 codes in [0, 30]. `lr` is the mean absolute step per code unit and the eps
    weigh the terms of one normalized step, so both depend on the code's range and on the size of the class gradient:
    for EfficientNet-Lite0's pooled ReLU6 features as the code (each in [0, 6]), `PPGNSettings(lr=0.5, eps1=1e-3)`
    (chosen on held-out classes) bring more chains to p >= 0.9 than the defaults, with less diverse last images (README,
    generator priors).

    `save_every=N` keeps, as the authors' sampler does, the image of every chain at steps N, 2N, ... (before that
    step's update) whose class probability is at least `threshold`: `samples`, `sample_steps`, `sample_chains`. The
    authors save every step (N = 1); each saved step holds `chains` images in memory until the end.
    """
    probe, generator = _check_sampler_inputs(model, generator)
    check_positive_int(steps, "steps")
    check_positive_int(chains, "chains")
    if not callable(prior):
        raise ModelTypeError(f"the prior must be a callable on codes (a CodeDAE, JointPrior, or a function h -> R(h));"
                             f" got {type(prior).__name__}")
    check_positive_int(reset_every, "reset_every", allow_none=True)
    settings = PPGNSettings.checked(settings, "settings")
    if save_every is not None and (not isinstance(save_every, int) or save_every < 1):
        raise ObjectiveError(f"save_every must be a positive int or None; got {save_every!r}")
    gen = torch.Generator().manual_seed(seed)
    monitor: dict[str, Objective] = {}
    if isinstance(target, Objective):
        obj = target
    else:
        unit = _class_index(target)
        n_out = probe.reading([""]).channels("", size or generator.image_size)  # the class probe, resized as needed
        _check_class(n_out, unit)
        obj = authors_class_term(unit) if settings.gradient == "authors" else class_log_probability(unit)
        monitor["p"] = class_probability(unit)
    codes = _initial_codes(generator, init, chains, gen)
    bound = _bounds(generator, upper)
    codes = clip_codes(codes, bound)

    def fresh(h: torch.Tensor) -> torch.Tensor:
        return _initial_codes(generator, "noise", h.shape[0], gen).to(h.device)

    def sampler(params):
        st = settings
        return CodeSampler(params, steps=steps, lr=st.lr, lr_end=st.lr if st.lr_end is None else st.lr_end,
                           upper=bound, prior=prior, eps1=st.eps1, eps2=st.eps2, eps3=st.eps3, reset_every=reset_every,
                           reset=fresh, generator=gen)

    # the image after k updates is the one step k (0-based) evaluates, so prob[k] is its class probability
    keep = bool(save_every) and "p" in monitor  # samples are kept by class probability: classes only
    saved = range(save_every, steps, save_every) if keep else range(0)
    param, res = _sample(probe, generator, obj, codes, size=size, steps=steps, sampler=sampler, monitor=monitor,
                         progress=progress, snapshots=saved)
    prob = res.monitored.get("p")
    kept = None if prob is None else prob[-1] >= threshold
    samples = steps_at = chains_at = None
    if keep:
        pick = [(k, c) for k in saved for c in range(prob.shape[1]) if float(prob[k, c]) >= threshold]
        steps_at = torch.tensor([k for k, _ in pick], dtype=torch.long)
        chains_at = torch.tensor([c for _, c in pick], dtype=torch.long)
        samples = (torch.stack([res.snapshots[k][c] for k, c in pick]) if pick
                   else res.images.new_zeros((0, *res.images.shape[1:])))
    return SamplerResult(images=res.images, codes=param.codes.detach().cpu(), activation=res.history,
                         probability=prob, kept=kept, seconds=res.seconds, samples=samples, sample_steps=steps_at,
                         sample_chains=chains_at, preprocessing=res.preprocessing)
