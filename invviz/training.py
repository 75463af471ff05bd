"""The one training loop of invviz (feature alignment, generators, code priors): tqdm progress, atomic
checkpoints that resume to the identical next step, a stop with a message on a non-finite loss.

Checkpoints hold only tensors and plain containers and are read with `torch.load(weights_only=True)`: loading one
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

from .errors import CheckpointError, NonFiniteError

StepFn = Callable[[Any, int], Mapping[str, float | torch.Tensor]]


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write `state` atomically: to a temporary file in the same folder, flushed, then renamed over `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint with weights-only loading; a typed error for a missing, truncated or foreign file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with code, not a torch file
        raise CheckpointError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}); it is truncated, not a"
                              " torch checkpoint, or holds code (only weights are loaded)") from err
    if not isinstance(state, dict) or "modules" not in state or "step" not in state:
        raise CheckpointError(f"{path} is not an invviz training checkpoint (keys: {list(state)[:8]})")
    return state


def _load_modules(state: Mapping[str, Any], modules: Mapping[str, nn.Module],
                  optimizers: Mapping[str, torch.optim.Optimizer], path: str) -> None:
    missing = sorted(set(modules) - set(state["modules"])) + sorted(set(optimizers) - set(state["optimizers"]))
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it was written by a different training setup")
    for name, module in modules.items():
        try:
            module.load_state_dict(state["modules"][name])
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint {path}: {name!r} does not fit the model: {err}") from err
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])


def fit(
    step_fn: StepFn,
    loader: Iterable[Any],
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    epochs: int = 1,
    max_steps: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 200,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Run `step_fn(batch, step)` over `loader` for `epochs` (or `max_steps`); returns the per-step logs.

    `step_fn` does its own forward, backward and optimizer steps and returns named losses; the first one is checked
    for finiteness. The loader is reshuffled from `seed + epoch` each epoch (when it has a `generator`), so a resumed
    run sees the same batches: resuming from a checkpoint gives the identical next step. With `checkpoint`, the state
    of `modules` and `optimizers`, the step, the RNG state and the log are written atomically every
    `checkpoint_every` steps and at the end; a non-finite loss stops training with an error and leaves the last good
    checkpoint in place.
    """
    history: list[dict[str, float]] = []
    step = 0
    path = None if checkpoint is None else os.fspath(checkpoint)
    if path and resume and os.path.exists(path):
        state = load_checkpoint_state(path)
        _load_modules(state, modules, optimizers, path)
        step = int(state["step"])
        history = [dict(h) for h in state.get("history", [])]
        torch.set_rng_state(state["rng"])
    try:
        n_batches = len(loader)  # type: ignore[arg-type]
    except TypeError:
        n_batches = None
    total = max_steps if max_steps is not None else (epochs * n_batches if n_batches else None)

    def state_now() -> dict[str, Any]:
        return {"modules": {k: m.state_dict() for k, m in modules.items()},
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "step": step, "rng": torch.get_rng_state(), "history": history}

    bar = tqdm(total=total, initial=step, disable=not progress, desc=desc, leave=False)
    epoch = step // n_batches if n_batches else 0
    skip = step % n_batches if n_batches else 0
    done = max_steps is not None and step >= max_steps  # a resumed run that is already complete does nothing
    while not done and (max_steps is not None or epoch < epochs):
        gen = getattr(loader, "generator", None)
        if isinstance(gen, torch.Generator):
            gen.manual_seed(seed + epoch)
        for i, batch in enumerate(loader):
            if i < skip:
                continue
            logs = {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in step_fn(batch, step).items()}
            first = next(iter(logs.values()), 0.0)
            if not math.isfinite(first):
                where = f"; the last good checkpoint (step {_saved_step(path)}) is kept at {path}" if path else ""
                raise NonFiniteError(f"{desc}: the loss became {first} at step {step + 1}{where}; lower the learning"
                                     " rate or check the data")
            history.append(logs)
            step += 1
            bar.update(1)
            if progress and step % 10 == 0:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
            if path and step % checkpoint_every == 0:
                save_checkpoint(path, state_now())
            if max_steps is not None and step >= max_steps:
                done = True
                break
        skip = 0
        epoch += 1
        if n_batches == 0:
            break
    bar.close()
    if path:
        save_checkpoint(path, state_now())
    return history


def _saved_step(path: str | None) -> int | str:
    try:
        return int(load_checkpoint_state(path)["step"]) if path else "none"
    except CheckpointError:
        return "none"
