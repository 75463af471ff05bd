"""Settings that travel together, in one place, as frozen dataclasses: the library's verbs and the command line read
their defaults from here (no default is written twice). Nothing here imports torch, so the command line's parser
(and `--help`) is built without it."""

from __future__ import annotations

import dataclasses
import math

from .errors import ObjectiveError, SettingError
from .validate import check_learning_rate, check_positive_int


class _Checked:
    """What the settings classes share: a verb checks the value it was handed with `Cls.checked(value, name)`."""

    EXAMPLE = ""  # how to make one, shown in the error
    ERROR: type[Exception] = SettingError

    @classmethod
    def checked(cls, value: object, name: str):
        """`value` if it is one of these, else a typed error that shows how to make one."""
        if not isinstance(value, cls):
            raise cls.ERROR(f"{name} is an invviz {cls.__name__}, e.g. {cls.EXAMPLE}; got {type(value).__name__}")
        return value


@dataclasses.dataclass(frozen=True)
class Recipe(_Checked):
    """How a feature visualization is optimized: Adam's step count, learning rate and its schedule, and the random
    transforms. One recipe travels to `visualize`, `render`, the atlas, concepts and the command line."""

    steps: int
    lr: float
    lr_schedule: str  # "constant" or "cosine" (from lr down to lr / 20)
    transforms: str  # "standard" (Lucid's chain), "fused" (the same draws, one resampling), "none"

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "a recipe's steps")
        check_learning_rate(self.lr, "a recipe's lr")
        if self.lr_schedule not in ("constant", "cosine"):
            raise SettingError(f"a recipe's lr_schedule is 'constant' or 'cosine'; got {self.lr_schedule!r}")
        if self.transforms not in ("standard", "fused", "none"):
            raise SettingError(f"a recipe's transforms are 'standard', 'fused' or 'none'; got {self.transforms!r}")


RECIPES = {
    # Lucid's exactly: Adam 0.05, constant, the standard transforms chained, 512 steps
    "lucid": Recipe(steps=512, lr=0.05, lr_schedule="constant", transforms="standard"),
    # invviz's default: a cosine-falling rate from 0.1 and the same draws fused into one resampling reach Lucid's
    # quality in fewer steps (benchmarks/bench_atlas_vs_lucent.py; the figures in benchmarks/README.md)
    "fast": Recipe(steps=384, lr=0.1, lr_schedule="cosine", transforms="fused"),
}
DEFAULT_RECIPE = "fast"

# Defaults that the library and the command line share, each written here once
RENDER_SIZE = 128  # px of a feature visualization: visualize, the atlas, concepts' renders
RENDER_PARAM = "fft"  # Lucid's decorrelated FFT image
ATLAS_BATCH = 16  # units rendered together by the atlas
TOP_K = 6  # dataset examples kept per atlas unit and per concept
CONCEPT_POSITIONS = 16  # activation vectors drawn per image by `concepts`
ALIGN_STEPS = 2  # FeatureAligned's alignment steps T: chosen by benchmarks/fa_wrapper_fashion.py (rows A1 and A5)
ALIGN_LR = 1e-3  # train_aligned's Adam rate
ALIGN_PRESERVE = "auto"  # how FeatureAligned keeps predictions: a projection for affine heads, else distillation
ALIGN_TRAINABLE = "encoder"  # what FeatureAligned trains: the modules before the latent
UNIT_KIND = "channel"  # an atlas unit's objective
CONCEPT_METHOD = "nmf"  # how `concepts` factors activations
# Optimization-based inversion, chosen by `python benchmarks/invert_lite0.py sweep` on four tuning photos (Lite0
# blocks.2, 128 px: the FFT image, Adam 0.05, a 2-pixel shift, total variation 0.05, 300 steps; the sweep's figures
# are in benchmarks/README.md). `python benchmarks/invert_lite0.py layers` reports them per layer on the six other
# bundled photos.
INVERT_STEPS = 300
INVERT_PARAM = "fft"
INVERT_LR = 0.05
INVERT_TV = 0.05
INVERT_JITTER = 2

AGGREGATIONS = ("maxpool_mean", "mean", "pick")


@dataclasses.dataclass(frozen=True)
class IFVObjective(_Checked):
    """The form of Grad-IFV's direction objective (Reinbold & Westermann 2020, sec. 2.3): `<v, theta> cos(v,
    theta)^cossim_pow` on the layer's response aggregated over space, `v = aggregation(features)`. One value travels
    to `realize`, `recover_objective`, `reoptimize`, `match` and the objective itself.

    Attributes:
        cossim_pow: the cosine power `p >= 0` (0: the plain dot product).
        aggregation: `"maxpool_mean"` (the paper's: a 3x3 max-pool, stride 1, then the spatial mean), `"mean"`, or
            `"pick"` (the value at `position`).
        position: `(row, column)` on the layer's grid for `"pick"` (the centre when None).
    """

    EXAMPLE = "IFVObjective(cossim_pow=1.0, aggregation='mean')"
    ERROR = ObjectiveError

    cossim_pow: float = 1.0
    aggregation: str = "maxpool_mean"
    position: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        p = self.cossim_pow
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0:
            raise ObjectiveError(f"cossim_pow must be a finite number >= 0; got {p!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ObjectiveError(f"unknown aggregation {self.aggregation!r}; use one of {AGGREGATIONS}")
        pos = self.position
        if pos is not None:
            if (not isinstance(pos, (tuple, list)) or len(pos) != 2
                    or not all(isinstance(i, int) and not isinstance(i, bool) for i in pos)):
                raise ObjectiveError(f"position is (row, column), two ints; got {pos!r}")
            object.__setattr__(self, "position", (int(pos[0]), int(pos[1])))



PPGN_GRADIENTS = ("authors", "exact")


@dataclasses.dataclass(frozen=True)
class PPGNSettings(_Checked):
    """PPGN-h's step (Nguyen et al. 2017, the authors' `sampler.py`): `d = eps1 (R(h) - h) + eps2 g + N(0, eps3^2)`,
    `h <- h + eta_t d / mean|d|`, `eta_t` falling linearly from `lr` to `lr_end`. The defaults are the authors', for
    fc6 codes in [0, 30].

    Attributes:
        eps1: weight of the prior's pull `R(h) - h`.
        eps2: weight of the class (objective) gradient.
        eps3: standard deviation of the noise.
        lr: the mean absolute step per code unit at the start.
        lr_end: ... at the end (`lr` when None: a constant rate).
        gradient: for a class target, `"authors"` (`(1 - p) d logit / dh`, the authors' approximation of
            `d log p / dh`) or `"exact"` (the log-softmax gradient).
    """

    EXAMPLE = "PPGNSettings(lr=0.5, eps1=1e-3)"
    ERROR = ObjectiveError

    eps1: float = 1e-5
    eps2: float = 1.0
    eps3: float = 1e-17
    lr: float = 1.0
    lr_end: float | None = None
    gradient: str = "authors"

    def __post_init__(self) -> None:
        for name in ("eps1", "eps2", "eps3", "lr", "lr_end"):
            value = getattr(self, name)
            if value is None and name == "lr_end":
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not 0 <= value <= 1e3):
                raise ObjectiveError(f"{name} must be a finite number in [0, 1e3]; got {value!r}")
        if self.gradient not in PPGN_GRADIENTS:
            raise ObjectiveError(f"gradient must be one of {PPGN_GRADIENTS}; got {self.gradient!r}")


@dataclasses.dataclass(frozen=True)
class TrainSchedule(_Checked):
    """How long a training runs, how often it is saved, and its seed: one value travels from every trainer
    (`train_aligned`, `train_generator`, `train_code_dae`, the concepts' sparse autoencoder) to the one training loop,
    :func:`invviz.training.fit`.

    Attributes:
        epochs: passes over the data (ignored when `max_steps` is set).
        max_steps: stop after this many steps in all (a resumed run counts the steps it had done).
        checkpoint_every: steps between checkpoints (when a checkpoint path is given).
        seed: seeds the shuffling of every epoch (and the trainer's own randomness).
    """

    EXAMPLE = "TrainSchedule(max_steps=100)"

    epochs: int = 1
    max_steps: int | None = None
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.max_steps, "max_steps", allow_none=True)
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SettingError(f"seed must be an int; got {self.seed!r}")



__all__ = ["Recipe", "RECIPES", "DEFAULT_RECIPE", "RENDER_SIZE", "RENDER_PARAM", "ATLAS_BATCH", "TOP_K",
           "CONCEPT_POSITIONS", "ALIGN_STEPS", "ALIGN_LR", "ALIGN_PRESERVE", "ALIGN_TRAINABLE", "UNIT_KIND",
           "CONCEPT_METHOD", "INVERT_STEPS", "INVERT_PARAM", "INVERT_LR", "INVERT_TV",
           "INVERT_JITTER", "AGGREGATIONS", "IFVObjective", "PPGNSettings", "TrainSchedule"]
