"""Data-parallel training and sharded work with PyTorch's own engine (`torchrun`, `torch.distributed`).

Under `torchrun` (the environment has `RANK` and `WORLD_SIZE`), :func:`setup` starts the process group once (NCCL
when each rank has its own GPU, gloo otherwise) and every rank works on its own share: :func:`shard_loader` gives
each rank `batch_size / world` of every global batch (the same global batches as one process), and
:func:`average_gradients_at_step` makes each optimizer average its gradients over the ranks just before it steps —
the all-reduce DistributedDataParallel does, placed at the optimizer instead of inside a wrapped forward, because
invviz's training steps call the model several times per step (feature alignment differentiates through T alignment
steps, and its captures stop the forward early at the latent) and decide on the mean loss of all ranks (the
generator's loss-ratio balancing). Outside `torchrun` every function here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from ..errors import DistributedError


def launched() -> bool:
    """True when this process was started by `torchrun` (or another launcher that sets `RANK` and `WORLD_SIZE`)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def active() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(backend: str | None = None) -> bool:
    """Start the process group when launched by `torchrun` and it is not started yet; returns :func:`active`.

    The backend is NCCL when CUDA is available and there is a GPU per local rank, gloo otherwise (or `backend`).
    """
    if active() or not launched():
        return active()
    if not dist.is_available():
        raise DistributedError("torch.distributed is not available in this build of torch; run without torchrun")
    if backend is None:
        local = int(os.environ.get("LOCAL_RANK", 0))
        backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() > local else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return active()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and shows progress."""
    return rank() == 0


def device() -> torch.device:
    """This rank's device: `cuda:LOCAL_RANK` where each rank has a GPU, else the CPU."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available() and torch.cuda.device_count() > local:
        return torch.device("cuda", local)
    return torch.device("cpu")


def barrier() -> None:
    if active():
        dist.barrier()


def all_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over the ranks (a copy; `value` itself outside a distributed run)."""
    if not active():
        return value
    out = value.detach().clone().float()
    dist.all_reduce(out)
    return out / world_size()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_gather_tensor(value: torch.Tensor) -> torch.Tensor:
    """Every rank's `value` (same shape on every rank) concatenated along the first axis, in rank order."""
    if not active():
        return value
    parts = [torch.empty_like(value) for _ in range(world_size())]
    dist.all_gather(parts, value.contiguous())
    return torch.cat(parts)


def local_randn(like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like this rank's batch `like (B_local, ...)`, drawn as the whole global batch's
    noise on every rank (so the random stream, and each sample's noise, are the same for any number of ranks) and
    sliced to this rank's samples (positions `rank, rank + W, ...` of the global batch, as :func:`shard_loader`
    deals them)."""
    if not active():
        return torch.randn_like(like)
    w = world_size()
    full = torch.randn((like.shape[0] * w, *like.shape[1:]), dtype=like.dtype).to(like.device)
    return full[rank()::w]


def shard_loader(loader: Iterable[Any], seed: int) -> Iterable[Any]:
    """A loader giving this rank its share of every global batch of `loader` (a `DataLoader`).

    The global batch is `loader.batch_size`; each of the `W` ranks gets `batch_size / W` of it, drawn by a
    `DistributedSampler` seeded with `seed` (and the epoch, which :func:`invviz.training.fit` sets), in one process
    too, so 1 and `W` processes see the same global batches. Loaders with their own sampler, and iterables that are
    not DataLoaders, are used as they are in one process.
    """
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

    plain = isinstance(loader, DataLoader) and type(loader.sampler) in (RandomSampler, SequentialSampler) and \
        loader.batch_sampler is not None and type(loader.batch_sampler).__name__ == "BatchSampler"
    if not active():
        if not plain:
            return loader
    elif not isinstance(loader, DataLoader):
        raise DistributedError(f"a distributed run needs a torch DataLoader to shard; got {type(loader).__name__}")
    w = world_size()
    if not plain:
        raise DistributedError("a distributed run shards a DataLoader built with batch_size and shuffle; this one has"
                               f" its own sampler ({type(loader.sampler).__name__})")
    if loader.batch_size is None or loader.batch_size % w:
        raise DistributedError(f"the global batch size {loader.batch_size} does not divide over {w} ranks; use a"
                               f" multiple of {w}")
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=w, rank=rank(), shuffle=shuffle, seed=seed,
                                 drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size // w, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, drop_last=loader.drop_last,
                      pin_memory=loader.pin_memory)


def average_gradients_at_step(optimizer: torch.optim.Optimizer):
    """Register a step pre-hook on `optimizer` that averages its parameters' gradients over the ranks.

    Parameters with no gradient on any rank keep none; where some ranks have one, the others contribute zeros.
    Returns the hook handle (remove it when training ends), or None outside a distributed run.
    """
    if not active():
        return None

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in opt.param_groups for p in group["params"]]
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
        dist.all_reduce(has)
        w = world_size()
        for p, count in zip(params, has.tolist()):
            if count == 0:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.div_(w)

    return optimizer.register_step_pre_hook(hook)


__all__ = ["launched", "active", "setup", "rank", "world_size", "is_main", "device", "barrier", "all_mean",
           "broadcast_object", "all_gather_object", "all_gather_tensor", "local_randn", "shard_loader", "average_gradients_at_step"]
