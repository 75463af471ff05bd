"""The atlas's static site: one HTML page (the index inline, so it opens from the file system) built from the files
in `static/`, and the pages of concepts."""

from __future__ import annotations

import html
import importlib.resources
import json
import os
from typing import Any

import torch

from ..io import save_image
from ..plotting import image_grid


def _static(name: str) -> str:
    return (importlib.resources.files("invviz.microscope") / "static" / name).read_text(encoding="utf-8")


def _safe(layer: str) -> str:
    """A layer's folder name."""
    return "output" if not layer else "".join(c if c.isalnum() or c in "._-" else "_" for c in layer)


def _heat_rgb(heat: torch.Tensor) -> torch.Tensor:
    """A map `(H, W)` with values in [0, 1] as magma colours `(H, W, 3)` in [0, 1] (the site's heat maps)."""
    import matplotlib

    return torch.from_numpy(matplotlib.colormaps["magma"](heat.clamp(0, 1).numpy())[..., :3])


def _concept_page(result: Any, out_dir: str) -> dict[str, Any]:
    """Write a concepts result's images (renderings, examples, their maps over the examples) and return its page:
    the same record as a layer's units, with the importance for the objective and the classes that use each."""
    folder = os.path.join(_safe(result.layer), f"concepts_{result.method}_{result.k}")
    units = {}
    for j in range(result.k):
        image = os.path.join(folder, f"concept_{j:03d}.png")
        save_image(image_grid(result.images[j:j + 1], pad=0), os.path.join(out_dir, image))
        peak = float(result.heatmaps[j].max().clamp(min=1e-12))
        examples = []
        for e in range(result.examples.shape[1]):
            crop = result.examples[j, e].permute(1, 2, 0)
            heat = _heat_rgb(result.heatmaps[j, e] / peak).float()
            rel = os.path.join(folder, f"concept_{j:03d}_{e}.png")
            save_image(crop.numpy(), os.path.join(out_dir, rel))
            over = os.path.join(folder, f"concept_{j:03d}_{e}_map.png")
            save_image(((0.5 * crop.float() / 255 + 0.5 * heat) * 255 + 0.5).to(torch.uint8).numpy(),
                       os.path.join(out_dir, over))
            examples.append({"image": rel, "activation": float(result.scores[j, e]), "attribution": over})
        units[str(j)] = {"image": image, "objective": float(result.importance[j]), "seed": result.settings["seed"],
                         "examples": examples, "name": f"concept {j}",
                         "classes": [[c, round(s, 6)] for c, s in result.top_classes(j, 5)]}
    return {"units": units, "channels": result.k, "kind": "concepts", "layer": result.layer, "method": result.method,
            "r2": result.r2, "dead": result.dead}


def site(index: dict[str, Any]) -> str:
    """The atlas as one HTML page with the index inline (a page opened from the file system may not fetch files)."""
    data = json.dumps(index).replace("</", "<\\/")
    title = html.escape(str(index.get("title", "atlas")))
    s = index.get("settings", {})
    about = html.escape(f"{s.get('steps')} steps at {s.get('size')} px, {s.get('param')} parameterization")
    page = _static("atlas.html")
    for key, value in (("TITLE", title), ("ABOUT", about), ("STYLE", _static("atlas.css")),
                       ("SCRIPT", _static("atlas.js")), ("DATA", data)):
        page = page.replace("{{" + key + "}}", value)
    return page


__all__ = ["site"]
