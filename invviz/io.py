"""Every file invviz writes or reads: atomic writes, output paths checked before long work, one weights-only reader.

- Writes go to a temporary file in the target's folder, are flushed to disk, then renamed over the target
  (`os.replace`): a crash or a kill during a write leaves the previous file intact. Temporary files left by a
  killed process (`.NAME.tmp-PID-...` beside the target) are removed at the next write of the same target.
- :func:`check_writable` is called by every verb that writes, before its work starts, so a training run or an atlas
  never finds out at the end that it cannot save.
- :func:`read_state_dict` and :func:`load_checkpoint_state` read with `torch.load(weights_only=True)` (or
  safetensors): loading a file never executes code from it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import torch

from .errors import CheckpointError, OutputPathError

PathLike = str | os.PathLike[str]


def _tmp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(path: PathLike) -> list[str]:
    """Remove temporary files beside `path` left by writers that no longer run; returns the removed paths."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(folder), glob.escape(_tmp_prefix(path)) + "*")):
        pid_text = os.path.basename(tmp)[len(_tmp_prefix(path)):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                os.remove(tmp)
                removed.append(tmp)
    return removed


def check_writable(path: PathLike, what: str = "output") -> str:
    """Check that `path` can be written (its folder exists or can be created, it is not a folder, nothing in the way);
    returns it as a string. Raises :class:`OutputPathError` saying what is wrong. Creates missing folders."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OutputPathError(f"the {what} path must be a non-empty file path; got {path!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputPathError(f"the {what} path {path!r} is a folder; give a file path inside it, e.g."
                              f" {os.path.join(path, 'out' + _suffix(what))!r}")
    folder = os.path.dirname(os.path.abspath(path))
    probe = folder
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.path.isdir(probe):
        raise OutputPathError(f"cannot write the {what} {path!r}: {probe!r} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path) + f"{os.getpid()}-check-", dir=folder)
        os.close(fd)
        os.remove(tmp)
    except OSError as err:
        raise OutputPathError(f"cannot write the {what} {path!r} ({type(err).__name__}: {err.strerror or err}); choose"
                              " a folder you can write to") from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputPathError(f"the {what} {path!r} exists and is read-only; remove it or choose another path")
    return path


def _suffix(what: str) -> str:
    return {"PNG": ".png", "image": ".png", "checkpoint": ".pt", "JSON": ".json"}.get(what, "")


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", what: str = "output") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; on success it is flushed, synced and renamed over `path`, on
    any error it is removed and `path` is left as it was."""
    path = check_writable(path, what)
    clean_stale_temporaries(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path) + f"{os.getpid()}-", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # the permissions a plain open() would have given
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: PathLike, write: Callable[[IO[Any]], None], *, mode: str = "wb", what: str = "output") -> str:
    """`write(f)` into a temporary file, then rename it over `path` (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, mode, what) as f:
        write(f)
    return os.fspath(path)


def write_json(path: PathLike, obj: Any) -> str:
    """Write `obj` as indented JSON, atomically."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=1), mode="w", what="JSON")


def image_format(path: PathLike) -> str:
    """The image format a path's suffix names (`.png`, `.jpg`, `.webp`, ... as Pillow knows them; PNG without a
    suffix); an :class:`OutputPathError` for a suffix that is no image format."""
    from PIL import Image

    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if not suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise OutputPathError(f"cannot write an image to {os.fspath(path)!r}: {suffix!r} is not an image format;"
                              " use .png (lossless, keeps transparency) or .jpg")
    return fmt


def save_image(array: Any, path: PathLike) -> str:
    """Write a `uint8` array `(H, W, 3|4)` (or a PIL image) atomically, in the format the suffix names (PNG without
    one; transparency dropped for formats without it, such as JPEG)."""
    from PIL import Image

    fmt = image_format(path)
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return atomic_write(path, lambda f: image.save(f, format=fmt), what="image")


def save_figure(fig: Any, path: PathLike, **kwargs: Any) -> str:
    """Save a matplotlib figure atomically (the format from the path's suffix)."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    kwargs = {"dpi": 120, "bbox_inches": "tight", **kwargs}
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, **kwargs), what="figure")


def save_checkpoint(path: PathLike, state: dict[str, Any]) -> str:
    """Write a checkpoint (tensors and plain containers only) atomically."""
    return atomic_write(path, lambda f: torch.save(state, f), what="checkpoint")


def save_state_dict(path: PathLike, state_dict: dict[str, torch.Tensor]) -> str:
    """Write a model's state dict atomically (`.safetensors` by suffix, else a weights-only torch file)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import save

        blob = save({k: v.contiguous() for k, v in state_dict.items()})
        return atomic_write(path, lambda f: f.write(blob), what="checkpoint")
    return save_checkpoint(path, dict(state_dict))


def _torch_load(path: str) -> Any:
    """`torch.load(weights_only=True)`; every failure (missing, truncated, foreign, code inside) as CheckpointError."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path!r} (no such file)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"the checkpoint {path!r} is empty (0 bytes): a write that never finished, or not a"
                              " checkpoint; write it again")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with code, not a torch file, partial write
        raise CheckpointError(
            f"cannot read checkpoint {path!r} ({type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}); it is"
            " truncated, not a torch/safetensors file, or holds code (only tensors and plain containers are read,"
            " never code)") from None


def read_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a model state dict without executing code: safetensors, or `torch.load(weights_only=True)`.

    A file holding `{"state_dict": ...}`, `{"model": ...}` or `{"model_state_dict": ...}` (common wrappers) gives the
    inner dict; an invviz training checkpoint gives its only module.
    """
    path = os.fspath(path)
    state = _torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("modules"), dict) and len(state["modules"]) == 1:
        state = next(iter(state["modules"].values()))
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path!r} holds no state dict of tensors (a dict of name -> tensor)")
    return state


def read_plain(path: PathLike) -> Any:
    """Read a file written by :func:`save_checkpoint` (tensors and plain containers) without executing code."""
    return _torch_load(os.fspath(path))


def load_checkpoint_state(path: PathLike) -> dict[str, Any]:
    """Read an invviz training checkpoint (`{"modules", "optimizers", "step", ...}`) with weights-only loading."""
    path = os.fspath(path)
    state = _torch_load(path)
    if not isinstance(state, dict) or "modules" not in state or "step" not in state:
        keys = list(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path!r} is not an invviz training checkpoint (it holds {keys})")
    return state


__all__ = ["atomic_open", "atomic_write", "check_writable", "clean_stale_temporaries", "write_json", "save_image",
           "save_figure", "save_checkpoint", "save_state_dict", "read_state_dict", "read_plain",
           "load_checkpoint_state"]
