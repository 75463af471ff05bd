"""The atlas's dataset examples: the top-k of every unit in one streaming pass, merged over ranks, with a heat map of
the unit on each (:func:`invviz.attribution.unit_heatmap`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from ..attribution import unit_heatmap
from ..data.stream import ITEM, image_batches, merge_top, peak_crops
from ..io import save_image
from ..models.probe import Probe
from ..training import distributed as ddp
from .site import _heat_rgb, _safe
from .units import Unit


def _data_batches(data: Any, size: int, channels: int) -> Iterable[tuple[int, torch.Tensor]]:
    """This rank's share (every `world`-th batch) of :func:`invviz.data.stream.image_batches`."""
    for i, x in image_batches(data, size, channels):
        if i % ddp.world_size() == ddp.rank():
            yield i, x


@torch.no_grad()
def _examples(probe: Probe, chosen: dict[str, list[Unit]], data: Any, k: int, crop: int, size: int,
              out_dir: str, attribution: bool) -> dict[str, dict[int, list[dict]]]:
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
                    w = torch.stack([u.weights(c) for u in idx])
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
        for row, item in enumerate(idx):
            unit = item.number
            entries = []
            for j in range(score.shape[1]):
                if not torch.isfinite(score[row, j]):
                    continue
                rel = os.path.join(_safe(layer), "examples", f"unit_{unit:04d}_{j}.png")
                save_image(crops[row, j].permute(1, 2, 0).numpy(), os.path.join(out_dir, rel))
                entry = {"image": rel, "activation": float(score[row, j])}
                if attribution:
                    entry["attribution"] = _attribution(probe, item, crops[row, j], out_dir, rel)
                entries.append(entry)
            out[layer][unit] = entries
    return out


def _attribution(probe: Probe, unit: Unit, crop: torch.Tensor, out_dir: str, rel: str) -> str:
    """The unit's heat map on an example (:func:`invviz.attribution.unit_heatmap`), as a PNG beside it."""
    image = (crop.float() / 255)[None]
    heat = unit_heatmap(probe, unit.layer, unit.weights, image)
    rgb = (_heat_rgb(heat) * 255 + 0.5).to(torch.uint8)
    path = rel.replace(".png", "_attribution.png")
    save_image(rgb.numpy(), os.path.join(out_dir, path))
    return path


# -- the static site ----------------------------------------------------------------------------------------------
