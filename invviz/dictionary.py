"""Dictionary learning on a layer over a dataset (`invviz.concepts`): its activations factored into `k` directions, each with its evidence.

:func:`concepts` makes two streaming passes over the data through the one probe:

1. **Activations.** Every image gives its layer features `(C, h, w)`; `positions` of its `h * w` vectors are drawn
   (all with `positions=None`), each with a random key from the seed and the image's id, and a bounded reservoir
   keeps the `max_vectors` smallest keys of all seen (a uniform sample; memory flat in the dataset size). Whole
   images are held out (`held_out` of them) for the reconstruction figures. Under `torchrun` each rank takes every
   `world`-th batch and the reservoirs merge by key, so any number of processes keeps the same sample.
2. **Evidence.** With the dictionary learned, every image's concept maps `(k, h, w)` give each concept's top
   `top_n` examples (a crop around its strongest position, and the concept's map over the crop), and, when the model
   outputs class scores, each concept's contribution to the predicted class: gradient x concept activation
   (CRAFT's attribution in concept space), averaged per predicted class.

Dictionaries (`method`): `"nmf"` (scikit-learn's NMF; a non-negative layer, e.g. after a ReLU), `"sae"` (a TopK
sparse autoencoder, Gao et al. 2024, trained with invviz's training loop; any sign), `"pca"` (the baseline).
`overcomplete` (the maintained sparse-autoencoder library) was the first choice for the SAE, but its 0.3.0 release
does not import with matplotlib >= 3.9 (`matplotlib.cm.get_cmap` was removed), so the SAE is a small module here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .data.stream import ITEM, image_batches, merge_top, peak_crops
from .errors import CheckpointError, DataError, LayerNotFoundError, ObjectiveError, SettingError
from .io import read_plain, save_checkpoint
from .models.probe import Probe, as_probe, image_size
from .settings import CONCEPT_METHOD, CONCEPT_POSITIONS, RENDER_PARAM, RENDER_SIZE, TOP_K, TrainSchedule
from .training import distributed as ddp
from .training.loop import fit
from .validate import check_positive_int

METHODS = ("nmf", "sae", "pca")
FORMAT = "invviz-concepts-1"


def _top_k(pre: torch.Tensor, k: int) -> torch.Tensor:
    """The `k` largest of each row of `pre (N, m)` kept, the rest zero."""
    top = pre.topk(min(k, pre.shape[1]), dim=1)
    return torch.zeros_like(pre).scatter(1, top.indices, top.values)


def _r2(x: torch.Tensor, rec: torch.Tensor, mean: torch.Tensor) -> float:
    """The fraction of the variance of `x (N, C)` about `mean` that `rec` reconstructs."""
    return float(1 - (x - rec).pow(2).sum() / (x - mean).pow(2).sum().clamp(min=1e-300))


class TopKSAE(nn.Module):
    """A TopK sparse autoencoder (Gao et al. 2024): `z = TopK(ReLU(W_enc (x - b_dec) + b_enc))`, `x_hat = z D +
    b_dec`, with the dictionary's rows `D (k, C)` kept at unit norm (the codes carry the scale)."""

    def __init__(self, channels: int, k: int, top_k: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        d = init.clone() if init is not None else torch.randn(k, channels)
        d = d / d.norm(dim=1, keepdim=True).clamp(min=1e-12)
        self.dictionary = nn.Parameter(d)
        self.w_enc = nn.Parameter(d.T.clone())  # the encoder starts as the decoder's transpose (Gao et al.)
        self.b_enc = nn.Parameter(torch.zeros(k))
        self.b_dec = nn.Parameter(torch.zeros(channels))
        self.top_k = top_k

    def directions(self) -> torch.Tensor:
        return self.dictionary / self.dictionary.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return _top_k(torch.relu((x - self.b_dec) @ self.w_enc + self.b_enc), self.top_k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x) @ self.directions() + self.b_dec


@dataclasses.dataclass
class Concepts:
    """A layer's concepts: `directions (k, C)` in its channel space, with their figures and evidence.

    Attributes:
        layer, method: where and how they were learned.
        directions: one row per concept (unit norm for SAE and PCA; NMF's rows carry its scale).
        importance: each concept's share of the reconstructed activation energy on the sample `(k,)` (sums to 1).
        r2: the fraction of the held-out activations' variance the concepts reconstruct (whole images held out).
        dead: the fraction of concepts that are never active on the sample (NMF, SAE).
        center: the vector the concepts are added to (PCA's mean, the SAE's decoder bias; zero for NMF).
        encoder: the SAE's encoder weights (empty for NMF and PCA).
        examples: the top examples per concept, uint8 `(k, n, 3, s, s)`; `heatmaps (k, n, s, s)` where in each crop
            the concept is (its map over the crop); `scores (k, n)` its peak value on each.
        class_ids, class_scores, class_counts: for models with class outputs, the classes predicted on the data,
            each one's mean contribution per concept `(m, k)` (gradient x concept activation) and its image count.
        images: each concept rendered `(k, 3, H, W)` once :meth:`render` ran (or None).
        settings: what was asked (method, k, sizes, seed, ...), and the sample's size.
        seconds: wall time of the activation pass, the learning and the evidence pass.
    """

    layer: str
    method: str
    directions: torch.Tensor
    importance: torch.Tensor
    r2: float
    dead: float
    center: torch.Tensor
    encoder: dict[str, torch.Tensor]
    examples: torch.Tensor
    heatmaps: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor
    class_scores: torch.Tensor
    class_counts: torch.Tensor
    settings: dict[str, Any]
    images: torch.Tensor | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.directions.shape[0])

    # -- codes ----------------------------------------------------------------------------------------------
    def encode(self, acts: torch.Tensor) -> torch.Tensor:
        """Concept activations `(N, k)` of activation vectors `(N, C)` (NMF: non-negative least squares against the
        fixed dictionary; SAE: its encoder; PCA: the projection)."""
        return _encode(self.method, self.directions, self.center, self.encoder, self.settings, acts)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Activation vectors `(N, C)` from concept activations `(N, k)`."""
        return codes.to(self.directions.dtype) @ self.directions + self.center

    def top_classes(self, concept: int, n: int = 5) -> list[tuple[int, float]]:
        """The classes that rely most on `concept`: `(class, mean contribution)`, largest first."""
        if not 0 <= concept < self.k:
            raise SettingError(f"concept {concept} is outside 0..{self.k - 1}")
        if self.class_ids.numel() == 0:
            return []
        col = self.class_scores[:, concept]
        order = col.argsort(descending=True)[:n]
        return [(int(self.class_ids[i]), float(col[i])) for i in order]

    def concepts_of(self, cls: int, n: int = 5) -> list[tuple[int, float]]:
        """The concepts class `cls` relies on most: `(concept, mean contribution)`, largest first."""
        hit = (self.class_ids == cls).nonzero().flatten()
        if hit.numel() == 0:
            raise SettingError(f"class {cls} was never predicted on the data; known: {self.class_ids.tolist()[:20]}")
        row = self.class_scores[int(hit[0])]
        order = row.argsort(descending=True)[:n]
        return [(int(i), float(row[i])) for i in order]

    def evaluate(self, model: nn.Module | Probe, data: Any, *, positions: int | None = None,
                 max_vectors: int = 50_000, batch: int = 16) -> dict[str, float]:
        """Held-out figures on other data (e.g. crops of photos kept out of learning): the fraction of the
        activations' variance reconstructed (`r2`, against the data's own mean), the fraction of concepts never
        active (`dead`), and the number of vectors (`vectors`)."""
        probe = as_probe(model).reading([self.layer])
        sample, _ = _collect(probe, self.layer, data, int(self.settings["size"]), positions=positions,
                             max_vectors=max_vectors, held_out=0.0, seed=int(self.settings["seed"]), batch=batch)
        x = sample["x"]
        codes = self.encode(x).double()
        r2 = _r2(x, codes @ self.directions.double() + self.center.double(), x.mean(0))
        dead = 0.0 if self.method == "pca" else float((codes.abs().amax(0) <= 0).float().mean())
        return {"r2": r2, "dead": dead, "vectors": len(x)}

    # -- rendering --------------------------------------------------------------------------------------------
    def render(self, model: nn.Module | Probe, *, steps: int | None = None, size: int = RENDER_SIZE,
               param: str = RENDER_PARAM,
               importance: bool = False, seed: int = 0, progress: bool = False, **kwargs: Any):
        """Render every concept direction in one batch with the fast recipe (`invviz.settings.RECIPES["fast"]`, the
        atlas's; the `direction` objective at the layer; `kwargs` go to :func:`invviz.visualize`); `param="maco", importance=True` also gives MaCo's importance maps. Keeps the images in
        `self.images` and returns the :class:`~invviz.RenderResult`."""
        from .optvis.objectives import direction
        from .optvis.render import visualize

        probe = as_probe(model)
        width = probe.reading([self.layer]).channels(self.layer, size)
        if width != self.directions.shape[1]:
            raise SettingError(f"these concepts have {self.directions.shape[1]} channels but {self.layer!r} of this"
                               f" model has {width}: render them with the model they were learned on")
        res = visualize(probe, None, direction(self.layer, self.directions.float()), batch=self.k, steps=steps,
                        size=size, param=param, importance=importance, seed=seed, progress=progress, recipe="fast",
                        **kwargs)
        self.images = res.images
        return res

    def figure(self, concepts: Sequence[int] | None = None, n: int | None = None):
        """A grid: one row per concept (by importance), its rendering (if rendered) then its top examples with the
        concept's map over each."""
        import matplotlib.pyplot as plt

        rows = list(self.importance.argsort(descending=True).tolist() if concepts is None else concepts)
        n = self.examples.shape[1] if n is None else min(n, self.examples.shape[1])
        cols = n + (self.images is not None)
        fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.7 * len(rows)), squeeze=False)
        for r, c in enumerate(rows):
            j = 0
            if self.images is not None:
                axes[r, 0].imshow(self.images[c].permute(1, 2, 0).clamp(0, 1).numpy())
                j = 1
            for e in range(n):
                ax = axes[r, j + e]
                ax.imshow(self.examples[c, e].permute(1, 2, 0).numpy())
                ax.imshow(self.heatmaps[c, e].numpy(), cmap="magma", alpha=0.45, vmin=0,
                          vmax=float(self.heatmaps[c].max().clamp(min=1e-12)))
            axes[r, 0].set_ylabel(f"{c}: {100 * float(self.importance[c]):.0f}%", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{self.method} concepts of {self.layer} (R² {self.r2:.2f})", fontsize=9)
        fig.tight_layout()
        return fig

    # -- saving -----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the result atomically (tensors and plain values only; read back by :meth:`load`)."""
        state = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}
        return save_checkpoint(path, state)

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: nn.Module | Probe | None = None) -> Concepts:
        """Read a saved result without executing code; with `model`, check that its layer has the same width."""
        state = read_plain(path)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{os.fspath(path)!r} is not a saved invviz Concepts result")
        result = cls(**{f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state})
        if model is not None:
            probe = as_probe(model)
            size = result.settings.get("size")
            width = probe.reading([result.layer]).channels(result.layer, size)
            if width != result.directions.shape[1]:
                raise SettingError(f"the saved concepts of {result.layer!r} have {result.directions.shape[1]} channels"
                                   f" but this model's {result.layer!r} has {width}: load them with the model they"
                                   " were learned on")
        return result

    def __repr__(self) -> str:
        return (f"Concepts(layer={self.layer!r}, method={self.method!r}, k={self.k}, channels="
                f"{self.directions.shape[1]}, r2={self.r2:.3f}, dead={self.dead:.2f})")


def _encode(method: str, directions: torch.Tensor, center: torch.Tensor, encoder: dict[str, torch.Tensor],
            settings: dict, acts: torch.Tensor) -> torch.Tensor:
    x = acts.double()
    d = directions.double()
    if method == "pca":
        return ((x - center.double()) @ d.T).float()
    if method == "sae":
        pre = torch.relu((x - center.double()) @ encoder["w_enc"].double() + encoder["b_enc"].double())
        return _top_k(pre, int(settings["top_k"])).float()
    from sklearn.decomposition import non_negative_factorization

    if x.shape[0] == 0:
        return torch.zeros(0, d.shape[0])
    w, _, _ = non_negative_factorization(x.clamp(min=0).numpy(), H=d.numpy(), n_components=d.shape[0],
                                         update_H=False, max_iter=400, tol=1e-6)
    return torch.from_numpy(w).float()


def _image_keys(seed: int, ident: int, n: int, held_out: float) -> tuple[torch.Tensor, bool]:
    """Random keys for an image's `n` positions and whether the image is held out, from the seed and its id only."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + ident) % (2 ** 62))
    held = bool(torch.rand((), generator=gen) < held_out)
    return torch.rand(n, generator=gen, dtype=torch.float64), held


def _keep(pool: dict[str, torch.Tensor], part: dict[str, torch.Tensor], cap: int) -> dict[str, torch.Tensor]:
    """The `cap` smallest keys of two samples (a bottom-k reservoir: a uniform sample, mergeable in any order)."""
    if not pool:
        merged = part
    else:
        merged = {name: torch.cat([pool[name], part[name]]) for name in pool}
    if len(merged["key"]) > cap:
        order = merged["key"].argsort()[:cap]
        merged = {name: v[order] for name, v in merged.items()}
    return merged


@torch.no_grad()
def _collect(probe: Probe, layer: str, data: Any, size: int, *, positions: int | None, max_vectors: int,
             held_out: float, seed: int, batch: int) -> tuple[dict[str, torch.Tensor], int]:
    """Pass 1: the sample of activation vectors `{"x" (N, C), "key", "held", "id"}` (sorted by key) and the
    number of images seen."""
    pool: dict[str, torch.Tensor] = {}
    images = 0
    with probe:
        for i, x in image_batches(data, size, probe.channels_in, batch=batch):
            if i % ddp.world_size() != ddp.rank():
                continue
            f = probe(x)[layer].double().cpu()  # (B, C, h, w)
            b, c, h, w = f.shape
            vecs, keys, held, ids = [], [], [], []
            for j in range(b):
                ident = i * ITEM + j
                key, out = _image_keys(seed, ident, h * w, held_out)
                pick = key.argsort()[:positions] if positions is not None and positions < h * w else torch.arange(h * w)
                vecs.append(f[j].reshape(c, h * w).T[pick])
                keys.append(key[pick])
                held.append(torch.full((len(pick),), out))
                ids.append(torch.full((len(pick),), ident, dtype=torch.long))
            images += b
            part = {"x": torch.cat(vecs), "key": torch.cat(keys), "held": torch.cat(held), "id": torch.cat(ids)}
            pool = _keep(pool, part, max_vectors)
    parts = ddp.all_gather_object(pool)
    images = sum(ddp.all_gather_object(images))
    merged: dict[str, torch.Tensor] = {}
    for part in parts:
        if part:
            merged = _keep(merged, part, max_vectors)
    if not merged:
        raise DataError("the data gave no images; pass an image folder, a tensor (N, C, H, W), a DataLoader, or"
                        " 'photos'")
    order = merged["key"].argsort()
    return {name: v[order] for name, v in merged.items()}, images


def _learn(method: str, x: torch.Tensor, k: int, *, seed: int, max_iter: int, top_k: int, sae_steps: int,
           sae_lr: float, sae_batch: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The dictionary `(k, C)`, its center `(C,)` and the encoder's weights (SAE) from training vectors `(N, C)`."""
    c = x.shape[1]
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=k, random_state=seed, svd_solver="full").fit(x.numpy())
        return torch.from_numpy(pca.components_).double(), torch.from_numpy(pca.mean_).double(), {}
    if method == "nmf":
        from sklearn.decomposition import NMF

        nmf = NMF(n_components=k, init="nndsvda", max_iter=max_iter, random_state=seed, tol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: the figures say how good it is
            nmf.fit(x.clamp(min=0).numpy())
        return torch.from_numpy(nmf.components_).double(), torch.zeros(c, dtype=torch.float64), {}
    # sae: on vectors scaled to unit mean norm (the step size does not depend on the layer's scale)
    scale = float(x.norm(dim=1).mean().clamp(min=1e-12))
    gen = torch.Generator().manual_seed(seed)
    xs = (x / scale).float()
    start = _spread_start(xs, k, gen)
    torch.manual_seed(seed)
    sae = TopKSAE(c, k, top_k, init=start)
    opt = torch.optim.Adam(sae.parameters(), lr=sae_lr)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs), batch_size=min(sae_batch, len(xs)),
                                         shuffle=True, generator=torch.Generator().manual_seed(seed), drop_last=True)

    def step(batch: Any, _: int) -> dict[str, torch.Tensor]:
        (v,) = batch
        opt.zero_grad(set_to_none=True)
        loss = (sae(v) - v).pow(2).sum(1).mean()
        loss.backward()
        opt.step()
        return {"mse": loss.detach()}

    epochs = max(1, math.ceil(sae_steps / max(1, len(loader))))
    fit(step, loader, modules={"sae": sae}, optimizers={"adam": opt},
        schedule=TrainSchedule(epochs=epochs, max_steps=sae_steps, seed=seed), progress=progress, desc="sae")
    enc = {"w_enc": sae.w_enc.detach().double(), "b_enc": sae.b_enc.detach().double()}
    return sae.directions().detach().double(), sae.b_dec.detach().double() * scale, {
        name: (v * scale if name == "b_enc" else v) for name, v in enc.items()}


def _spread_start(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """`k` data vectors spread over the directions of `x (N, C)` (k-means++ seeding on their unit vectors: each next
    one drawn with probability growing with its angular distance to those picked), to start the SAE's dictionary
    with one atom near each cluster of directions rather than several on the commonest one."""
    unit = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    picked = [int(torch.randint(len(x), (1,), generator=gen))]
    dist = 1 - unit @ unit[picked[0]]
    for _ in range(1, min(k, len(x))):
        weights = dist.clamp(min=0) ** 2
        nxt = int(torch.multinomial(weights, 1, generator=gen)) if float(weights.sum()) > 0 else \
            int(torch.randint(len(x), (1,), generator=gen))
        picked.append(nxt)
        dist = torch.minimum(dist, 1 - unit @ unit[nxt])
    start = x[picked]
    if len(start) < k:
        start = torch.cat([start, torch.randn(k - len(start), x.shape[1], generator=gen)])
    return start


def _figures(method: str, d: torch.Tensor, center: torch.Tensor, enc: dict, settings: dict, train: torch.Tensor,
             held: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Importance `(k,)` (share of reconstructed energy on the training sample), held-out R^2, dead fraction."""
    codes = _encode(method, d, center, enc, settings, train).double()
    energy = codes.pow(2).sum(0) * d.pow(2).sum(1)
    importance = (energy / energy.sum().clamp(min=1e-300)).float()
    held_codes = _encode(method, d, center, enc, settings, held).double() if len(held) else None
    if held_codes is None:  # R^2 on the training sample when no image was held out
        r2 = _r2(train, codes @ d + center, train.mean(0))
    else:
        r2 = _r2(held, held_codes @ d + center, train.mean(0))
    if method == "pca":
        dead = 0.0
    else:
        both = codes if held_codes is None else torch.cat([codes, held_codes])
        dead = float((both.abs().amax(0) <= 1e-9 * both.abs().max().clamp(min=1e-300)).float().mean())
    return importance, r2, dead


def _evidence(probe: Probe, layer: str, data: Any, size: int, result: Concepts, *, top_n: int, crop: int,
              batch: int, classes: bool) -> None:
    """Pass 2: each concept's top examples with its map over them, and per predicted class each concept's mean
    gradient x concept activation."""
    best: dict[str, tuple] = {}
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    d = result.directions.double()
    reading = probe.reading([layer, ""] if classes else [layer], in_graph=classes)
    with reading:
        for i, x in image_batches(data, size, probe.channels_in, batch=batch):
            if i % ddp.world_size() != ddp.rank():
                continue
            if classes:
                with torch.enable_grad():
                    # the gradient is taken at the layer's own output (raw: tokens for a ViT), then laid out as
                    # the features are (the same selection and reshaping applies to both)
                    xg = x.to(reading.device).requires_grad_(True)
                    out = reading(xg, raw=True)
                    logits = out[""].flatten(1)
                    pred = logits.argmax(1)
                    grad = torch.autograd.grad(logits.gather(1, pred[:, None]).sum(), out[layer])[0]
                lay = reading.layout(layer)
                f, grad = lay.to_features(out[layer].detach()), lay.to_features(grad).double().cpu()
            else:
                with torch.no_grad():
                    f = reading(x)[layer]
            f = f.double().cpu()
            b, c, h, w = f.shape
            codes = result.encode(f.permute(0, 2, 3, 1).reshape(-1, c)).double()  # (B*h*w, k)
            maps = codes.reshape(b, h * w, -1).permute(0, 2, 1)  # (B, k, h*w)
            score, pos = maps.max(dim=2)
            crops, heat = peak_crops(x.cpu(), pos, h, w, crop, maps.reshape(b, -1, h, w).float())
            ids = (torch.arange(b) + i * ITEM)[:, None].expand(b, result.k)
            merge_top(best, "top", score.T.float(), ids.T, top_n, crops.transpose(0, 1), heat.transpose(0, 1))
            if classes:
                g = grad.permute(0, 2, 3, 1).reshape(b, h * w, c) @ d.T  # (B, h*w, k): <d_j, grad> per position
                contrib = (g * codes.reshape(b, h * w, -1)).sum(1)  # (B, k)
                for row, cls in enumerate(pred.tolist()):
                    sums[cls] = sums.get(cls, torch.zeros(result.k, dtype=torch.float64)) + contrib[row]
                    counts[cls] = counts.get(cls, 0) + 1
    merged: dict[str, tuple] = {}
    for part in ddp.all_gather_object(best):
        if part:
            merge_top(merged, "top", *part["top"][:2], top_n, *part["top"][2:])
    _, _, result.examples, result.heatmaps = merged["top"]
    result.scores = merged["top"][0]
    total_s: dict[int, torch.Tensor] = {}
    total_n: dict[int, int] = {}
    for part_s, part_n in ddp.all_gather_object((sums, counts)):
        for cls, v in part_s.items():
            total_s[cls] = total_s.get(cls, 0) + v
            total_n[cls] = total_n.get(cls, 0) + part_n[cls]
    ids = sorted(total_s)
    result.class_ids = torch.tensor(ids, dtype=torch.long)
    result.class_counts = torch.tensor([total_n[c] for c in ids], dtype=torch.long)
    result.class_scores = (torch.stack([total_s[c] / total_n[c] for c in ids]).float() if ids
                           else torch.zeros(0, result.k))


def concepts(model: nn.Module | Probe, layer: str, data: Any, k: int, *, method: str = CONCEPT_METHOD,
             size: int | None = None, positions: int | None = CONCEPT_POSITIONS, max_vectors: int = 50_000,
             held_out: float = 0.2, top_n: int = TOP_K, crop: int = 96, classes: bool | None = None, seed: int = 0,
             batch: int = 16, max_iter: int = 400, top_k: int | None = None, sae_steps: int = 3000, sae_lr: float = 3e-3,
             sae_batch: int = 512, progress: bool = False) -> Concepts:
    """Learn `k` concepts of `layer` over `data` and find each one's evidence.

    Args:
        model: the network, or a :class:`~invviz.Probe` of it.
        layer: the layer (see `invviz.list_layers`).
        data: `"photos"` (the photos bundled with the installed packages), an image folder, a tensor `(N, C, H, W)`
            in [0, 1], a Dataset, or a DataLoader of image batches.
        k: the number of concepts.
        method: `"nmf"`, `"sae"` or `"pca"` (see the module's docstring).
        size: the side images are fed at (default the model's native size).
        positions: activation vectors drawn per image (None: every position).
        max_vectors: the most vectors kept for learning (a uniform sample of all drawn; bounds memory).
        held_out: the fraction of images held out for the reconstruction figures.
        top_n, crop: examples kept per concept, and their side in pixels.
        classes: find each predicted class's concepts (default: when the model outputs a vector of scores).
        seed: seeds the sample, the split and the dictionary.
        batch: images per forward.
        max_iter: NMF iterations. top_k, sae_steps, sae_lr, sae_batch: the SAE's active concepts per vector
            (default `max(1, k // 8)`), Adam steps, learning rate, and batch of vectors.

    Returns:
        :class:`Concepts`; `.render(model)` visualizes them, `.figure()` shows them with their evidence,
        `invviz.atlas(..., concepts=result)` adds them to an atlas.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> c = concepts(net, "layer2", torch.rand(8, 3, 64, 64), 3, size=64, top_n=2, crop=16)
        >>> c.directions.shape, c.examples.shape
        (torch.Size([3, 128]), torch.Size([3, 2, 3, 16, 16]))
    """
    if method not in METHODS:
        raise SettingError(f"method must be one of {METHODS}; got {method!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise SettingError(f"k (the number of concepts) must be an int >= 1; got {k!r}")
    for name, value in (("max_vectors", max_vectors), ("top_n", top_n), ("crop", crop), ("batch", batch),
                        ("max_iter", max_iter), ("sae_steps", sae_steps), ("sae_batch", sae_batch)):
        check_positive_int(value, name)
    check_positive_int(positions, "positions", allow_none=True)
    if not 0 <= held_out < 1:
        raise SettingError(f"held_out must be a fraction in [0, 1); got {held_out!r}")
    top_k = max(1, k // 8) if top_k is None else top_k
    check_positive_int(top_k, "top_k")
    if not isinstance(layer, str) or not layer:
        raise LayerNotFoundError(f"name the layer to factor, e.g. 'layer3' (see invviz.list_layers); got {layer!r}")
    ddp.setup()
    base = as_probe(model)
    probe = base.reading([layer])
    size = base.native_size[0] if size is None else image_size(size)[0]
    t0 = time.perf_counter()
    sample, n_images = _collect(probe, layer, data, size, positions=positions, max_vectors=max_vectors,
                                held_out=held_out, seed=seed, batch=batch)
    x, is_held = sample["x"], sample["held"]
    train, held = x[~is_held], x[is_held]
    if len(train) < 2:
        raise DataError(f"the data gave {len(x)} activation vector(s) for learning; use more images or held_out=0")
    if k > min(train.shape):
        raise SettingError(f"k={k} concepts need at least {k} activation vectors and channels; {layer!r} has"
                           f" {train.shape[1]} channels and the sample {len(train)} vectors (more data, or"
                           " positions=None)")
    if method == "nmf":
        negative = float(train.clamp(max=0).abs().sum() / train.abs().sum().clamp(min=1e-300))
        if negative > 0.01:
            raise ObjectiveError(f"layer {layer!r} has negative activations ({100 * negative:.1f}% of the mass); NMF"
                                 " needs non-negative ones: use method='sae' (any sign) or a layer after a ReLU")
    if len(held) == 0 and held_out > 0:
        warnings.warn("no image was held out (too few images for held_out); R² is measured on the training sample",
                      stacklevel=2)
    settings = {"method": method, "k": k, "size": size, "positions": positions, "max_vectors": max_vectors,
                "held_out": held_out, "seed": seed, "top_k": top_k, "images": n_images, "vectors": len(x),
                "held_out_vectors": len(held), "max_iter": max_iter, "sae_steps": sae_steps, "sae_lr": sae_lr}
    t1 = time.perf_counter()
    d, center, enc = _learn(method, train, k, seed=seed, max_iter=max_iter, top_k=top_k, sae_steps=sae_steps,
                            sae_lr=sae_lr, sae_batch=sae_batch, progress=progress and ddp.is_main())
    importance, r2, dead = _figures(method, d, center, enc, settings, train, held)
    t2 = time.perf_counter()
    empty = torch.zeros(0)
    result = Concepts(layer=layer, method=method, directions=d.float(), importance=importance, r2=r2, dead=dead,
                      center=center.float(), encoder={n: v.float() for n, v in enc.items()}, examples=empty,
                      heatmaps=empty, scores=empty, class_ids=empty.long(), class_scores=empty,
                      class_counts=empty.long(), settings=settings)
    if classes is None:
        with torch.no_grad():
            out = base.reading([""])(torch.full((1, base.channels_in, size, size), 0.5))[""]
        classes = out.dim() == 4 and out.shape[2:] == (1, 1) and out.shape[1] > 1
    _evidence(base, layer, data, size, result, top_n=top_n, crop=crop, batch=batch, classes=bool(classes))
    result.seconds = {"activations": t1 - t0, "learning": t2 - t1, "evidence": time.perf_counter() - t2}
    return result


__all__ = ["Concepts", "TopKSAE", "concepts", "METHODS"]
