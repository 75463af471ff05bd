"""The one training loop of invviz (feature alignment, generators, code priors, the example classifier): progress,
atomic checkpoints that resume to the identical next step, a stop with a message on a non-finite loss, and
data-parallel runs under `torchrun`.

Checkpoints hold only tensors and plain containers and are read by `invviz.io` with weights-only loading: loading one
never executes code from it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import CheckpointError, DataError, NonFiniteError
from ..io import check_writable, load_checkpoint_state, save_checkpoint
from ..settings import TrainSchedule
from . import distributed as ddp

StepFn = Callable[[Any, int], Mapping[str, float | torch.Tensor]]


def _load_modules(state: Mapping[str, Any], modules: Mapping[str, nn.Module],
                  optimizers: Mapping[str, torch.optim.Optimizer], schedulers: Mapping[str, Any], path: str) -> None:
    missing = (sorted(set(modules) - set(state["modules"])) + sorted(set(optimizers) - set(state["optimizers"]))
               + sorted(set(schedulers) - set(state.get("schedulers", {}))))
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it was written by a different training setup")
    for name, module in modules.items():
        try:
            module.load_state_dict(state["modules"][name])
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint {path}: {name!r} does not fit the model: {err}") from None
    for name, opt in optimizers.items():
        try:
            opt.load_state_dict(state["optimizers"][name])
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint {path}: optimizer {name!r} does not fit: {err}") from None
    for name, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][name])


def batch_images(batch: Any, *, channels: int | None = None, size: tuple[int, int] | None = None,
                 check_range: bool = True) -> torch.Tensor:
    """The images of a training batch (a tensor, or the first item of `(images, labels)`), checked: float
    `(B, C, H, W)` with values in [0, 1] (and `channels` / `size` where given); a :class:`DataError` that names the
    fix otherwise."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"training batches must be images (B, C, H, W) or (images, labels); got {got}")
    if not x.dtype.is_floating_point:
        raise DataError(f"training images must be floats in [0, 1]; got dtype {x.dtype} (divide uint8 by 255)")
    if channels is not None and x.shape[1] != channels:
        raise DataError(f"training images have {x.shape[1]} channel(s); the model takes {channels}")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise DataError(f"training images are {tuple(x.shape[2:])} px but {tuple(size)} are needed; resize the data"
                        f" (invviz.data.image_folder(path, size=...)) or build the model for this size")
    if check_range:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1 or not math.isfinite(lo + hi):
            hint = " — they look normalized: pass images in [0, 1]" if lo < -0.05 else ""
            raise DataError(f"training images must lie in [0, 1]; got values in [{lo:.3g}, {hi:.3g}]{hint}")
    return x


def fit(
    step_fn: StepFn,
    loader: Iterable[Any],
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any] | None = None,
    schedule: TrainSchedule = TrainSchedule(),
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Run `step_fn(batch, step)` over `loader` for `schedule.epochs` (or `schedule.max_steps`); returns the per-step
    logs.

    `step_fn` does its own forward, backward and optimizer steps and returns named losses; the first one is checked
    for finiteness. The loader is reshuffled from `schedule.seed + epoch` each epoch (when it has a
    `generator`), so a resumed run sees the same batches: resuming from a checkpoint gives the identical next
    step. With `checkpoint`, the state of `modules`, `optimizers` and `schedulers`, the step, the RNG state and
    the log are written atomically every `schedule.checkpoint_every` steps and at the end; the path is checked
    before the first step; a non-finite loss stops training with an error and leaves the last good checkpoint in
    place.

    Under `torchrun` (see :mod:`invviz.training.distributed`) every rank takes its share of each global batch
    (`loader.batch_size` in all), the optimizers average gradients over the ranks before each step, the logged losses
    are the means over the ranks, and rank 0 writes the checkpoints: the same global batch gives the same loss
    trajectory as one process, within float tolerance.
    """
    schedule = TrainSchedule.checked(schedule, "schedule")
    epochs, max_steps, seed = schedule.epochs, schedule.max_steps, schedule.seed
    schedulers = dict(schedulers or {})
    ddp.setup()
    main = ddp.is_main()
    path = None if checkpoint is None else os.fspath(checkpoint)
    if path and main:
        check_writable(path, "checkpoint")
    history: list[dict[str, float]] = []
    step = 0
    if path and resume and os.path.exists(path):
        state = load_checkpoint_state(path)
        _load_modules(state, modules, optimizers, schedulers, path)
        step = int(state["step"])
        history = [dict(h) for h in state.get("history", [])]
        rngs = state.get("rng_per_rank") or [state["rng"]]
        torch.set_rng_state(rngs[ddp.rank()] if ddp.rank() < len(rngs) else rngs[0])
    data = ddp.shard_loader(loader, seed)
    try:
        n_batches = len(data)  # type: ignore[arg-type]
    except TypeError:
        n_batches = None
    total = max_steps if max_steps is not None else (epochs * n_batches if n_batches else None)
    hooks = [h for h in (ddp.average_gradients_at_step(o) for o in optimizers.values()) if h is not None]

    def save_now() -> None:
        rngs = ddp.all_gather_object(torch.get_rng_state())
        if main:
            save_checkpoint(path, {
                "modules": {k: m.state_dict() for k, m in modules.items()},
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
                "step": step, "rng": rngs[0], "rng_per_rank": rngs, "history": history,
                "world_size": ddp.world_size()})
        ddp.barrier()

    bar = tqdm(total=total, initial=step, disable=not (progress and main), desc=desc, leave=False)
    epoch = step // n_batches if n_batches else 0
    skip = step % n_batches if n_batches else 0
    done = max_steps is not None and step >= max_steps  # a resumed run that is already complete does nothing
    try:
        while not done and (max_steps is not None or epoch < epochs):
            gen = getattr(data, "generator", None)
            if isinstance(gen, torch.Generator):
                gen.manual_seed(seed + epoch)
            sampler = getattr(data, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            seen = 0
            for i, batch in enumerate(data):
                seen += 1
                if i < skip:
                    continue
                out = step_fn(batch, step)
                logs = {k: float(ddp.all_mean(v.detach() if torch.is_tensor(v) else torch.tensor(float(v))))
                        for k, v in out.items()}
                first = next(iter(logs.values()), 0.0)
                if not math.isfinite(first):
                    where = f"; the last good checkpoint (step {_saved_step(path)}) is kept at {path}" if path else ""
                    raise NonFiniteError(f"{desc}: the loss became {first} at step {step + 1}{where}; lower the"
                                         " learning rate or check the data")
                history.append(logs)
                step += 1
                bar.update(1)
                if progress and step % 10 == 0:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
                if path and step % schedule.checkpoint_every == 0:
                    save_now()
                if max_steps is not None and step >= max_steps:
                    done = True
                    break
            skip = 0
            epoch += 1
            if seen == 0:
                raise DataError(f"{desc}: the data loader yielded no batch; check that its dataset is not empty")
        bar.close()
        if path:
            save_now()
    finally:
        for h in hooks:
            h.remove()
    return history


def _saved_step(path: str | None) -> int | str:
    try:
        return int(load_checkpoint_state(path)["step"]) if path else "none"
    except CheckpointError:
        return "none"
