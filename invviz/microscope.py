"""`invviz.atlas` (this module, `invviz.microscope`): every unit of chosen layers rendered into a browsable static site, with the dataset examples that
excite each unit most (OpenAI Microscope's view, for the user's own model).

Units are rendered in fixed batches (the batch a unit falls in depends only on the layer's unit list and `batch`,
and its seed only on the layer and the batch), so a run gives the same files whatever the number of processes and
whether it was interrupted: under `torchrun` the batches are dealt to the ranks, each rank writes its units' PNGs,
and rank 0 writes the index. A unit already on disk (its PNG and its record) is not rendered again, so an
interrupted atlas continues where it stopped. Dataset examples come from one streaming pass over the data (a top-k
per unit, so memory does not grow with the data), sharded over the ranks and merged by rank 0.

Layout of `out_dir`: `index.html` (opens from the file system: no server, no network), `index.json`, and per layer
`LAYER/unit_NNNN.png` (the visualization), `LAYER/unit_NNNN.json` (its record) and `LAYER/examples/unit_NNNN_K.png`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .data.stream import ITEM, image_batches, merge_top, peak_crops
from .errors import LayerNotFoundError, SettingError
from .io import atomic_write, check_writable, save_image, write_json
from .models.loading import Preprocessing
from .models.probe import Probe, as_probe, image_size
from .optvis.objectives import channel, direction, neuron
from .optvis.render import visualize
from .plotting import image_grid
from .settings import RECIPES
from .training import distributed as ddp
from .training.loop import check_positive_int

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


def _safe(layer: str) -> str:
    return "output" if not layer else "".join(c if c.isalnum() or c in "._-" else "_" for c in layer)


def _batches(units: list[int], batch: int) -> list[list[int]]:
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


# The default recipe, chosen by `benchmarks/bench_atlas_vs_lucent.py` (time to lucent's 512-step quality)
_FAST = RECIPES["fast"]
ATLAS_STEPS, ATLAS_LR, ATLAS_LR_SCHEDULE, ATLAS_TRANSFORMS = _FAST.steps, _FAST.lr, _FAST.lr_schedule, _FAST.transforms


def atlas(model: nn.Module | Probe, layers: str | Sequence[str], out_dir: str | os.PathLike[str], *,
          units: Sequence[int] | dict[str, Sequence[int]] | None = None, steps: int = ATLAS_STEPS, size: int = 128,
          param: str = "fft", batch: int = 16, lr: float = ATLAS_LR, transforms: str = ATLAS_TRANSFORMS, seed: int = 0,
          data: Any = "photos", top_k: int = 6, example_size: int = 96, data_size: int = 224,
          attribution: bool = False, resume: bool = True, progress: bool = True, title: str | None = None,
          preprocessing: Preprocessing | None = None, kind: str = "channel",
          directions: dict[str, torch.Tensor] | None = None, lr_schedule: str = ATLAS_LR_SCHEDULE,
          concepts: Any = None) -> Atlas:
    """Render every chosen unit of `layers` into `out_dir` and write a browsable site (`index.html`).

    Args:
        model: any image model, or a :class:`~invviz.Probe` of one (its preprocessing and layouts).
        layers: layer names (see `invviz.list_layers`).
        units: channel indices for every layer, or `{layer: indices}` (default: every channel).
        steps, size, param, lr, transforms, lr_schedule: the render of each unit (one channel objective per batch
            element). The default recipe (Adam 0.1 falling along a cosine, the standard transforms fused into one
            resampling, 384 steps) reaches torch-lucent's 512-step activation 8.4x sooner per unit than lucent;
            Lucid's own recipe is `lr=0.05, lr_schedule="constant", transforms="standard"`, 512 steps.
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
    chosen: dict[str, list[int]] = {}
    for layer in layer_list:
        channels = probe.channels(layer, size)
        want = units.get(layer) if isinstance(units, dict) else units
        idx = list(range(channels)) if want is None else sorted({int(u) for u in want})
        if not idx and not concepts:
            raise SettingError(f"no units chosen in layer {layer!r}; name some, or pass concepts= for concept pages")
        bad = [u for u in idx if not 0 <= u < channels]
        if bad:
            raise SettingError(f"layer {layer!r} has {channels} channels (0..{channels - 1}); got units {bad[:5]}")
        chosen[layer] = idx
    extra: dict[str, dict[int, tuple[str, torch.Tensor]]] = {}  # layer -> unit number -> (name, direction)
    for name, vec in (directions or {}).items():
        vec = torch.as_tensor(vec, dtype=torch.float32).flatten()
        for layer in layer_list:
            channels = probe.channels(layer, size)
            if vec.numel() == channels:
                number = channels + len(extra.setdefault(layer, {}))
                extra[layer][number] = (str(name), vec)
                chosen[layer].append(number)
    settings = {"steps": steps, "size": size, "param": param, "batch": batch, "lr": lr, "transforms": transforms,
                "seed": seed, "top_k": top_k, "kind": kind, "lr_schedule": lr_schedule}
    t0 = time.perf_counter()
    work = [(layer, b) for layer in layer_list for b in _batches(chosen[layer], batch)]
    rendered = skipped = 0
    for i, (layer, group) in enumerate(work):
        if i % ddp.world_size() != ddp.rank():
            continue
        if resume and all(_done(out_dir, layer, u) for u in group):
            skipped += len(group)
            continue
        s = batch_seed(layer, group[0], seed)
        res = visualize(base, None, _objective(layer, group, kind, extra.get(layer, {})), batch=len(group),
                        steps=steps, size=size, param=param, transforms=transforms, lr=lr, seed=s, progress=progress,
                        lr_schedule=lr_schedule)
        for j, u in enumerate(group):
            png, record = _unit_paths(out_dir, layer, u)
            save_image(image_grid(res.images[j:j + 1], pad=0), png)
            write_json(record, {"layer": layer, "unit": u, "objective": float(res.final[j]), "seed": s,
                                "batch": group, "name": extra.get(layer, {}).get(u, (None,))[0], **settings})
        rendered += len(group)
    render_seconds = time.perf_counter() - t0
    examples = {} if data is None else _examples(probe, chosen, data, top_k, example_size, data_size, out_dir,
                                                  attribution, extra)
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


def _objective(layer: str, group: list[int], kind: str, extra: dict[int, tuple[str, torch.Tensor]]):
    """One objective per batch element: a channel (or the neuron at the centre), or a named direction."""
    if not any(u in extra for u in group):
        return channel(layer, group) if kind == "channel" else neuron(layer, group)
    terms = []
    for i, u in enumerate(group):
        if u in extra:
            terms.append(direction(layer, extra[u][1], batch=i))
        else:
            terms.append(channel(layer, u, batch=i) if kind == "channel" else neuron(layer, u, batch=i))
    return sum(terms)


def _index(model: nn.Module, out_dir: str, chosen: dict[str, list[int]], settings: dict, examples: dict,
           title: str | None) -> dict[str, Any]:
    layers = {}
    for layer, idx in chosen.items():
        entries = {}
        for u in idx:
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


def _concept_page(result: Any, out_dir: str) -> dict[str, Any]:
    """Write a concepts result's images (renderings, examples, their maps over the examples) and return its page:
    the same record as a layer's units, with the importance for the objective and the classes that use each."""
    import matplotlib

    folder = os.path.join(_safe(result.layer), f"concepts_{result.method}_{result.k}")
    units = {}
    for j in range(result.k):
        image = os.path.join(folder, f"concept_{j:03d}.png")
        save_image(image_grid(result.images[j:j + 1], pad=0), os.path.join(out_dir, image))
        peak = float(result.heatmaps[j].max().clamp(min=1e-12))
        examples = []
        for e in range(result.examples.shape[1]):
            crop = result.examples[j, e].permute(1, 2, 0).float() / 255
            heat = torch.from_numpy(matplotlib.colormaps["magma"]((result.heatmaps[j, e] / peak).clamp(0, 1).numpy())
                                    [..., :3]).float()
            rel = os.path.join(folder, f"concept_{j:03d}_{e}.png")
            save_image((crop * 255 + 0.5).to(torch.uint8).numpy(), os.path.join(out_dir, rel))
            over = os.path.join(folder, f"concept_{j:03d}_{e}_map.png")
            save_image(((0.5 * crop + 0.5 * heat) * 255 + 0.5).to(torch.uint8).numpy(), os.path.join(out_dir, over))
            examples.append({"image": rel, "activation": float(result.scores[j, e]), "attribution": over})
        units[str(j)] = {"image": image, "objective": float(result.importance[j]), "seed": result.settings["seed"],
                         "examples": examples, "name": f"concept {j}",
                         "classes": [[c, round(s, 6)] for c, s in result.top_classes(j, 5)]}
    return {"units": units, "channels": result.k, "kind": "concepts", "layer": result.layer, "method": result.method,
            "r2": result.r2, "dead": result.dead}


def _data_batches(data: Any, size: int, channels: int) -> Iterable[tuple[int, torch.Tensor]]:
    """This rank's share (every `world`-th batch) of :func:`invviz.data.stream.image_batches`."""
    for i, x in image_batches(data, size, channels):
        if i % ddp.world_size() == ddp.rank():
            yield i, x


@torch.no_grad()
def _examples(probe: Probe, chosen: dict[str, list[int]], data: Any, k: int, crop: int, size: int,
              out_dir: str, attribution: bool, extra: dict | None = None) -> dict[str, dict[int, list[dict]]]:
    """The top-k examples of every unit in one streaming pass: scores `(C, k)`, crops `(C, k, 3, s, s)` uint8 per
    layer; merged over the ranks by rank 0, which writes the example PNGs. A direction unit scores the features'
    projection on its direction."""
    best: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    weights: dict[str, torch.Tensor] = {}
    with probe:
        for i, x in _data_batches(data, size, probe.channels_in):
            feats = probe(x)
            for layer, idx in chosen.items():
                if layer not in weights:  # (U, C): one-hot rows for channels, the vector for a direction
                    c = feats[layer].shape[1]
                    w = torch.zeros(len(idx), c)
                    for row, u in enumerate(idx):
                        if u < c:
                            w[row, u] = 1.0
                        else:
                            w[row] = (extra or {})[layer][u][1]
                    weights[layer] = w.to(feats[layer].device, feats[layer].dtype)
                f = torch.einsum("uc,bchw->buhw", weights[layer], feats[layer])  # (B, U, h, w)
                b, u, h, w = f.shape
                flat = f.reshape(b, u, -1)
                score, pos = flat.max(dim=2)  # (B, U)
                crops = peak_crops(x, pos, h, w, crop)[0]  # (B, U, 3, s, s) uint8
                ids = (torch.arange(b) + i * ITEM)[:, None].expand(b, u)  # (batch, item): stable ties
                merge_top(best, layer, score.T.float().cpu(), ids.T, k, crops.transpose(0, 1))
    gathered = ddp.all_gather_object(best)
    merged: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for part in gathered:
        for layer, (score, ids, crops) in part.items():
            merge_top(merged, layer, score, ids, k, crops)
    out: dict[str, dict[int, list[dict]]] = {}
    if not ddp.is_main():
        return out
    for layer, idx in chosen.items():
        if layer not in merged:
            continue
        score, ids, crops = merged[layer]
        out[layer] = {}
        for row, unit in enumerate(idx):
            entries = []
            for j in range(score.shape[1]):
                if not torch.isfinite(score[row, j]):
                    continue
                rel = os.path.join(_safe(layer), "examples", f"unit_{unit:04d}_{j}.png")
                save_image(crops[row, j].permute(1, 2, 0).numpy(), os.path.join(out_dir, rel))
                entry = {"image": rel, "activation": float(score[row, j])}
                if attribution:
                    entry["attribution"] = _attribution(probe, layer, unit, crops[row, j], out_dir, rel)
                entries.append(entry)
            out[layer][unit] = entries
    return out


def _attribution(probe: Probe, layer: str, unit: int, crop: torch.Tensor, out_dir: str, rel: str) -> str:
    """captum's gradient x input of the unit (mean over space) on an example, as a heat map PNG beside it."""
    from captum.attr import InputXGradient

    probe = probe.reading([layer])
    x = (crop.float() / 255)[None].to(probe.device)

    def unit_mean(images: torch.Tensor) -> torch.Tensor:
        with probe.frozen():
            return probe(images)[layer][:, unit].mean(dim=(1, 2))[:, None]

    with torch.enable_grad():
        attr = InputXGradient(unit_mean).attribute(x.requires_grad_(True), target=0)
    heat = attr[0].abs().sum(0)
    heat = (heat / heat.max().clamp(min=1e-12)).cpu()
    import matplotlib

    rgb = (torch.from_numpy(matplotlib.colormaps["magma"](heat.numpy())[..., :3]) * 255 + 0.5).to(torch.uint8)
    path = rel.replace(".png", "_attribution.png")
    save_image(rgb.numpy(), os.path.join(out_dir, path))
    return path


# -- the static site ----------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 16px;display:flex;gap:16px;
align-items:center;flex-wrap:wrap;z-index:2}
header h1{font-size:18px;margin:0}
nav button{border:1px solid #ccc;background:#f4f4f4;padding:4px 10px;margin-right:4px;cursor:pointer;border-radius:4px}
nav button.active{background:#333;color:#fff}
#search{padding:4px 8px;width:8em}
main{display:flex;gap:16px;padding:16px}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(96px,1fr));gap:6px;flex:3;align-content:start}
.unit{background:#fff;border:2px solid transparent;border-radius:4px;cursor:pointer;text-align:center;font-size:11px}
.unit img{width:100%;display:block;border-radius:2px}
.unit.hit{border-color:#e33}
#panel{flex:2;min-width:280px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;position:sticky;
top:60px;align-self:flex-start}
#panel img.big{width:100%;image-rendering:auto}
.examples{display:grid;grid-template-columns:repeat(3,1fr);gap:4px}
.examples img{width:100%}
.muted{color:#777;font-size:12px}
"""

_JS = """
const A = window.ATLAS; const layers = Object.keys(A.layers);
const grid = document.getElementById('grid'), panel = document.getElementById('panel');
const nav = document.getElementById('layers'), count = document.getElementById('count');
let current = layers[0];
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function show(layer){
  current = layer; grid.innerHTML = '';
  [...nav.children].forEach(b => b.classList.toggle('active', b.dataset.layer === layer));
  const units = A.layers[layer].units; const ids = Object.keys(units).map(Number).sort((a,b)=>a-b);
  const kind = A.layers[layer].kind === 'concepts' ? 'concepts' : 'units';
  count.textContent = ids.length + ' ' + kind + (A.layers[layer].r2 !== undefined ? ', held-out R\u00b2 ' +
    A.layers[layer].r2.toFixed(3) : '');
  count.dataset.count = ids.length;
  for (const u of ids){
    const d = document.createElement('div'); d.className = 'unit'; d.id = 'unit-' + u; d.dataset.unit = u;
    d.innerHTML = '<img loading="eager" src="' + esc(units[u].image) + '" alt="unit ' + u + '"><span>' + u + '</span>';
    d.onclick = () => open(u); grid.appendChild(d);
  }
  if (ids.length) open(ids[0]);
}
function open(u){
  const e = A.layers[current].units[u]; if (!e) return;
  const concept = A.layers[current].kind === 'concepts';
  let ex = '';
  for (const x of e.examples){
    ex += '<figure><img src="' + esc(x.image) + '" alt="example"><figcaption class="muted">' + x.activation.toFixed(2) +
      '</figcaption>' + (x.attribution ? '<img src="' + esc(x.attribution) + '" alt="attribution">' : '') + '</figure>';
  }
  const what = concept ? 'importance ' + (100 * e.objective).toFixed(1) + '%' : 'objective ' + e.objective.toFixed(3);
  const cls = (e.classes || []).map(c => '<li>class ' + c[0] + ': ' + c[1].toPrecision(3) + '</li>').join('');
  panel.innerHTML = '<h2 id="panel-title">' + esc(current) + ' : ' + (concept ? 'concept ' : 'unit ') + u +
    (e.name && !concept ? ' (' + esc(e.name) + ')' : '') + '</h2><img class="big" src="' +
    esc(e.image) + '" alt="unit ' + u + '"><p class="muted">' + what + ', seed ' + e.seed +
    '</p>' + (ex ? '<h3>dataset examples</h3><div class="examples">' + ex + '</div>' : '') +
    (cls ? '<h3>classes that use it</h3><ul id="classes">' + cls + '</ul>' : '');
  document.querySelectorAll('.unit.hit').forEach(n => n.classList.remove('hit'));
  const cell = document.getElementById('unit-' + u); if (cell) cell.classList.add('hit');
}
for (const l of layers){
  const b = document.createElement('button'); b.textContent = l || '(output)'; b.dataset.layer = l;
  b.onclick = () => show(l); nav.appendChild(b);
}
document.getElementById('search').addEventListener('input', ev => {
  const u = parseInt(ev.target.value, 10); if (isNaN(u)) return;
  if (!(u in A.layers[current].units)){ const other = layers.find(l => u in A.layers[l].units); if (other) show(other); }
  if (u in A.layers[current].units){ open(u); document.getElementById('unit-' + u).scrollIntoView({block:'center'}); }
});
show(current);
"""


def site(index: dict[str, Any]) -> str:
    """The atlas as one HTML page with the index inline (a page opened from the file system may not fetch files)."""
    data = json.dumps(index).replace("</", "<\\/")
    title = html.escape(str(index.get("title", "atlas")))
    s = index.get("settings", {})
    about = html.escape(f"{s.get('steps')} steps at {s.get('size')} px, {s.get('param')} parameterization")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} atlas</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><header><h1>{title}</h1><nav id="layers"></nav><span id="count"></span>
<label>unit <input id="search" type="search" placeholder="number" inputmode="numeric"></label>
<span class="muted">{about} &middot; made with invviz</span></header>
<main><section id="grid"></section><aside id="panel"></aside></main>
<script>window.ATLAS = {data};</script><script>{_JS}</script></body></html>
"""


__all__ = ["Atlas", "atlas", "batch_seed", "site"]
