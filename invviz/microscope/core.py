"""The atlas's renders and index: units in fixed batches, resumable, sharded over ranks."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import LayerNotFoundError, SettingError
from ..io import atomic_write, check_writable, save_image, write_json
from ..models.loading import Preprocessing
from ..models.probe import Probe, as_probe, image_size
from ..optvis.render import recipe_of, visualize
from ..plotting import image_grid
from ..settings import ATLAS_BATCH, DEFAULT_RECIPE, RENDER_PARAM, RENDER_SIZE, TOP_K, UNIT_KIND, Recipe
from ..training import distributed as ddp
from ..validate import check_positive_int
from .examples import _examples
from .site import _concept_page, _safe, site
from .units import Unit, group_objective

INDEX_VERSION = 1


@dataclasses.dataclass
class Atlas:
    """What :func:`atlas` wrote: the index (as written to `index.json`) and where."""

    out_dir: str
    index: dict[str, Any]
    rendered: int
    skipped: int
    seconds: float

    @property
    def html(self) -> str:
        return os.path.join(self.out_dir, "index.html")

    def __repr__(self) -> str:
        n = sum(len(v["units"]) for v in self.index["layers"].values())
        return (f"Atlas({self.out_dir!r}, layers={list(self.index['layers'])}, units={n}, rendered={self.rendered},"
                f" skipped={self.skipped})")


def _batches(units: list[Unit], batch: int) -> list[list[Unit]]:
    return [units[i:i + batch] for i in range(0, len(units), batch)]


def batch_seed(layer: str, first_unit: int, seed: int) -> int:
    """The seed of the batch that starts at `first_unit` of `layer`: from the layer and the unit, never the rank."""
    return (zlib.crc32(f"{layer}:{first_unit}".encode()) ^ seed) & 0x7FFFFFFF


def _unit_paths(out_dir: str, layer: str, unit: int) -> tuple[str, str]:
    base = os.path.join(out_dir, _safe(layer), f"unit_{unit:04d}")
    return base + ".png", base + ".json"


def _done(out_dir: str, layer: str, unit: int) -> bool:
    png, record = _unit_paths(out_dir, layer, unit)
    if not (os.path.isfile(png) and os.path.isfile(record)):
        return False
    try:
        with open(record) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True




def atlas(model: nn.Module | Probe, layers: str | Sequence[str], out_dir: str | os.PathLike[str], *,
          units: Sequence[int] | dict[str, Sequence[int]] | None = None, recipe: str | Recipe = DEFAULT_RECIPE,
          steps: int | None = None, size: int = RENDER_SIZE, param: str = RENDER_PARAM, batch: int = ATLAS_BATCH,
          lr: float | None = None, lr_schedule: str | None = None, transforms: str | None = None, seed: int = 0,
          data: Any = "photos", top_k: int = TOP_K, example_size: int = 96, data_size: int = 224,
          attribution: bool = False, resume: bool = True, progress: bool = True, title: str | None = None,
          preprocessing: Preprocessing | None = None, kind: str = UNIT_KIND,
          directions: dict[str, torch.Tensor] | None = None, concepts: Any = None) -> Atlas:
    """Render every chosen unit of `layers` into `out_dir` and write a browsable site (`index.html`).

    Args:
        model: any image model, or a :class:`~invviz.Probe` of one (its preprocessing and layouts).
        layers: layer names (see `invviz.list_layers`).
        units: channel indices for every layer, or `{layer: indices}` (default: every channel).
        recipe: how each unit is rendered, as in :func:`invviz.visualize`: `"fast"` (the default: Adam 0.1 falling
            along a cosine, the standard transforms fused into one resampling, 384 steps; measured against
            torch-lucent by `benchmarks/bench_atlas_vs_lucent.py`), `"lucid"` (Lucid's own), or a
            :class:`~invviz.settings.Recipe`; `steps`, `lr`, `lr_schedule` and `transforms` given here override it.
        size, param: the render's size and parameterization (one channel objective per batch element).
        batch: units rendered together in one optimization.
        data: dataset examples from an image folder (a path), a DataLoader / iterable of image batches in [0, 1],
            `"photos"` (the photos bundled with the installed packages, the default), or None for none.
        top_k: examples kept per unit (the crops around each image's strongest position).
        example_size, data_size: side of the example crops written, and of the data images fed to the model.
        attribution: also write, for each example, the captum gradient x input of the unit (a heat map).
        resume: skip units already on disk (their PNG and record); False renders everything again.
        title: the site's title (default: the model's class name).
        kind: what a unit is: `"channel"` (the channel's mean over space) or `"neuron"` (the channel at the centre).
        directions: also render these directions, `{name: vector (C,)}`, in every layer whose width fits, as units
            numbered after the layer's channels (their names in the index).
        concepts: a :class:`~invviz.Concepts` result (or a list of them) from :func:`invviz.concepts`: each gets a
            page of its own beside the layers' (its concepts rendered with this recipe unless already rendered,
            their top examples with the concept's map over each, their importance and the classes that use them).
            `units={layer: []}` writes the concept pages alone.

    Returns:
        :class:`Atlas` with the index written to `index.json`.
    """
    base = as_probe(model, preprocessing=preprocessing)
    model = base.model
    rec = recipe_of(recipe)
    steps = rec.steps if steps is None else steps
    lr = rec.lr if lr is None else lr
    lr_schedule = rec.lr_schedule if lr_schedule is None else lr_schedule
    transforms = rec.transforms if transforms is None else transforms
    ddp.setup()
    out_dir = os.fspath(out_dir)
    layer_list = [layers] if isinstance(layers, str) else list(layers)
    if not layer_list:
        raise LayerNotFoundError("atlas needs at least one layer name")
    for name, value in (("steps", steps), ("batch", batch), ("top_k", top_k), ("example_size", example_size)):
        check_positive_int(value, name)
    if kind not in ("channel", "neuron"):
        raise SettingError(f"kind must be 'channel' or 'neuron'; got {kind!r}")
    size = image_size(size)[0]
    data_size = image_size(data_size)[0]
    if ddp.is_main():
        check_writable(os.path.join(out_dir, "index.json"), "JSON")
    probe = base.reading(layer_list)
    chosen: dict[str, list[Unit]] = {}
    widths = {layer: probe.channels(layer, size) for layer in layer_list}  # a forward each: found once
    for layer in layer_list:
        channels = widths[layer]
        want = units.get(layer) if isinstance(units, dict) else units
        idx = list(range(channels)) if want is None else sorted({int(u) for u in want})
        if not idx and not concepts:
            raise SettingError(f"no units chosen in layer {layer!r}; name some, or pass concepts= for concept pages")
        bad = [u for u in idx if not 0 <= u < channels]
        if bad:
            raise SettingError(f"layer {layer!r} has {channels} channels (0..{channels - 1}); got units {bad[:5]}")
        chosen[layer] = [Unit(layer, u, kind) for u in idx]
    for name, vec in (directions or {}).items():
        vec = torch.as_tensor(vec, dtype=torch.float32).flatten()
        for layer in layer_list:
            channels = widths[layer]
            if vec.numel() == channels:  # numbered after the channels, in the order given
                number = channels + sum(u.kind == "direction" for u in chosen[layer])
                chosen[layer].append(Unit(layer, number, "direction", vec, str(name)))
    settings = {"steps": steps, "size": size, "param": param, "batch": batch, "lr": lr, "transforms": transforms,
                "seed": seed, "top_k": top_k, "kind": kind, "lr_schedule": lr_schedule}
    t0 = time.perf_counter()
    work = [(layer, b) for layer in layer_list for b in _batches(chosen[layer], batch)]
    rendered = skipped = 0
    for i, (layer, group) in enumerate(work):
        if i % ddp.world_size() != ddp.rank():
            continue
        if resume and all(_done(out_dir, layer, u.number) for u in group):
            skipped += len(group)
            continue
        s = batch_seed(layer, group[0].number, seed)
        res = visualize(base, None, group_objective(group), batch=len(group), steps=steps, size=size, param=param,
                        transforms=transforms, lr=lr, seed=s, progress=progress, lr_schedule=lr_schedule)
        for j, u in enumerate(group):
            png, record = _unit_paths(out_dir, layer, u.number)
            save_image(image_grid(res.images[j:j + 1], pad=0), png)
            write_json(record, {"layer": layer, "unit": u.number, "objective": float(res.final[j]), "seed": s,
                                "batch": [v.number for v in group], "name": u.name, **settings})
        rendered += len(group)
    render_seconds = time.perf_counter() - t0
    examples = {} if data is None else _examples(probe, chosen, data, top_k, example_size, data_size, out_dir,
                                                  attribution)
    ddp.barrier()
    counts = ddp.all_gather_object((rendered, skipped))
    rendered, skipped = sum(c[0] for c in counts), sum(c[1] for c in counts)
    index = _index(model, out_dir, chosen, settings, examples, title)
    for result in ([] if concepts is None else [concepts] if not isinstance(concepts, (list, tuple)) else concepts):
        if ddp.is_main():
            if result.images is None:
                result.render(base, steps=steps, size=size, param=param, seed=seed, lr=lr, lr_schedule=lr_schedule,
                              transforms=transforms, progress=progress)
            index["layers"][f"{result.layer} · {result.method} concepts"] = _concept_page(result, out_dir)
    if ddp.is_main():
        write_json(os.path.join(out_dir, "index.json"), index)
        atomic_write(os.path.join(out_dir, "index.html"), lambda f: f.write(site(index)), mode="w", what="HTML")
        write_json(os.path.join(out_dir, "run.json"), {"seconds_render": render_seconds,
                                                       "seconds": time.perf_counter() - t0,
                                                       "rendered": rendered, "skipped": skipped,
                                                       "world_size": ddp.world_size()})
    ddp.barrier()
    return Atlas(out_dir, index, rendered, skipped, time.perf_counter() - t0)


def _index(model: nn.Module, out_dir: str, chosen: dict[str, list[Unit]], settings: dict, examples: dict,
           title: str | None) -> dict[str, Any]:
    layers = {}
    for layer, idx in chosen.items():
        entries = {}
        for unit in idx:
            u = unit.number
            png, record = _unit_paths(out_dir, layer, u)
            if not os.path.isfile(record):
                continue
            with open(record) as f:
                rec = json.load(f)
            entries[str(u)] = {"image": os.path.relpath(png, out_dir), "objective": rec["objective"],
                               "seed": rec["seed"], "examples": examples.get(layer, {}).get(u, [])}
            if rec.get("name"):
                entries[str(u)]["name"] = rec["name"]
        layers[layer] = {"units": entries, "channels": len(idx)}
    return {"version": INDEX_VERSION, "title": title or type(model).__name__, "settings": settings, "layers": layers}



__all__ = ["Atlas", "atlas", "batch_seed"]
