"""Generator priors on the pretrained EfficientNet-Lite0: DGN-AM against pixel-space visualization, PPGN-h against
DGN-AM, for classes and hidden units, at the same number of gradient steps (Nguyen et al. 2016's comparison).

    python benchmarks/priors_experiment.py          # CPU: ~30 min (generator training ~15 min)

1. A compact generator (64 px) is trained here to invert Lite0's pooled features (1280-d, the code) on random crops
   of the photos shipped with matplotlib/scikit-image/scikit-learn: pixel + comparator-feature (Lite0 `blocks.2`)
   + adversarial losses. Code bounds = mean + 3 sd. A code DAE is trained on the codes for PPGN-h.
2. For 10 classes and 10 hidden units (`blocks.5` channels), 200 steps each of: pixel-space `visualize` (FFT, the
   core's default), DGN-AM (eta_0 = 8 for classes, --unit-lr for units), PPGN-h (classes only; the authors'
   gradient and the exact one; the chains' images every --ppgn-save-every steps with p >= 0.9 are its kept samples,
   as the authors' sampler saves them).
3. Reported: reached activation, class probability, naturalness as the Frechet distance between features of a
   second network (Lite1's pooled `blocks.3`, 80-d; Lite0's own features when Lite1 is not installed) on the samples
   and on held-out photo crops, diversity as mean pairwise distance of those features (over all samples, and within
   each target's chains), time per sample. Generator and DAE checkpoints under --work: a rerun only samples.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import time

import torch

import invviz  # noqa: F401
from invviz import load_model, visualize
from invviz.data import photo_crops, photo_paths
from invviz.metrics import frechet_distance, mean_pairwise_distance
from invviz.models import Probe
from invviz.models.loading import Normalize, preprocessing_of
from invviz.optvis import channel, class_logit
from invviz.priors import (
    CompactGenerator,
    JointPrior,
    PPGNSettings,
    code_statistics,
    dgn_am,
    ppgn_h,
    train_code_dae,
    train_generator,
)
from invviz.training import TrainSchedule

CLASSES = [1, 94, 130, 281, 309, 417, 508, 717, 948, 980]  # goldfish, hummingbird, flamingo, tabby, bee, ...
UNITS = [0, 11, 23, 37, 50, 64, 88, 101, 140, 170]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen-steps", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=128, help="size the visualized model sees")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10, help="how many of the 10 classes")
    ap.add_argument("--units", type=int, default=10, help="how many of the 10 hidden units")
    ap.add_argument("--class-list", default=",".join(map(str, CLASSES)),
                    help="comma-separated ImageNet classes (the default 10 are the reported ones)")
    ap.add_argument("--ppgn-eps3", default="1e-17",
                    help="PPGN-h's noise scale eps3 (the authors' 1e-17); a comma-separated list runs one PPGN-h row"
                         " per value, for choosing it on other classes")
    ap.add_argument("--ppgn-eps1", default="1e-5",
                    help="PPGN-h's prior weight eps1 (the authors' 1e-5); a comma-separated list runs one PPGN-h row"
                         " per value, for choosing it on other classes")
    ap.add_argument("--ppgn-priors", default="dae",
                    help="PPGN-h's code prior R(h): 'dae' (the code DAE trained here) and/or 'joint' (E(G(h)), the"
                         " authors' released form); a comma-separated list runs one PPGN-h row per prior")
    ap.add_argument("--ppgn-gradients", default="authors,exact", help="PPGN-h class gradients to run")
    ap.add_argument("--ppgn-lr", default="1.0",
                    help="PPGN-h's step size (the authors' 1, constant); a comma-separated list runs one PPGN-h row per"
                         " value, for choosing it on other classes")
    ap.add_argument("--ppgn-save-every", type=int, default=10,
                    help="PPGN-h keeps the chains' images every N steps where p >= 0.9 (the authors' samples; 0: off);"
                         " scored under each PPGN-h row's 'kept_along_chains'")
    ap.add_argument("--unit-list", default=",".join(map(str, UNITS)),
                    help="comma-separated blocks.5 channels (the default 10 are the reported ones)")
    ap.add_argument("--unit-lr", default="8.0",
                    help="DGN-AM's initial step size eta_0 for hidden units (the seed uses 1-8; classes keep 8);"
                         " a comma-separated list runs one DGN-AM row per value, for choosing it on other units")
    ap.add_argument("--no-figures", action="store_true", help="do not write the sample rows into assets/")
    ap.add_argument("--work", default="benchmarks/results/priors")
    ap.add_argument("--out", default="benchmarks/results/priors.json")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(0)
    model = load_model("tf_efficientnet_lite0")
    names = sorted(photo_paths())
    train_names = names[:-2]  # the last two photos are never trained on
    crops = photo_crops(2048, 64, names=train_names, seed=0)
    held = photo_crops(256, args.size, names=names, seed=99, scale=(0.3, 0.8))
    encoder = Probe(model, "global_pool").latent  # the pooled features: the code
    comparator = Probe(model, "blocks.2").latent  # flattened blocks.2 features

    gen = CompactGenerator(code_dim=1280, size=64, width=64)
    loader = torch.utils.data.DataLoader(crops, batch_size=32, shuffle=True, generator=torch.Generator())
    t0 = time.perf_counter()
    hist = train_generator(gen, encoder, comparator, loader, schedule=TrainSchedule(max_steps=args.gen_steps), lr=5e-4,
                           checkpoint=os.path.join(args.work, "generator.pt"), progress=True)
    t_gen = time.perf_counter() - t0
    stats = code_statistics(encoder, torch.utils.data.DataLoader(crops, batch_size=128))
    gen.set_code_bounds(stats["upper"])
    dae, _ = train_code_dae(stats["codes"], schedule=TrainSchedule(epochs=40),
                            checkpoint=os.path.join(args.work, "dae.pt"), progress=False)
    priors = {"dae": dae, "joint": JointPrior(encoder, gen)}
    prior_names = args.ppgn_priors.split(",")
    if set(prior_names) - set(priors):
        ap.error(f"--ppgn-priors takes {sorted(priors)}; got {args.ppgn_priors}")

    try:
        second = functools.partial(Probe(load_model("tf_efficientnet_lite1"), "blocks.3").latent, pool=True)
        second_name = "EfficientNet-Lite1 blocks.3 (pooled, 80-d)"
    except Exception:
        second = functools.partial(Probe(model, "blocks.3").latent, pool=True)
        second_name = "EfficientNet-Lite0 blocks.3 (pooled, 80-d)"
    with torch.no_grad():
        real = second(held)

    def naturalness(groups: list[torch.Tensor]) -> dict[str, float]:
        """Frechet distance to the photo crops; diversity over all samples, and within each target's samples
        (`groups`: one tensor of images per target; targets with fewer than two samples have no within-diversity)."""
        with torch.no_grad():
            f = [second(torch.nn.functional.interpolate(g, size=args.size, mode="bilinear", antialias=True))
                 for g in groups if len(g)]
        within = [mean_pairwise_distance(x) for x in f if len(x) > 1]
        f = torch.cat(f)
        return {"frechet": frechet_distance(f, real), "diversity": mean_pairwise_distance(f),
                "diversity_within_target": float(sum(within) / len(within)) if within else float("nan"),
                "targets_with_two_or_more": len(within)}

    ch = args.chains
    normalize = Normalize(preprocessing_of(model))

    def logits_of(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(normalize(images))

    results: dict[str, dict] = {}
    units = [int(u) for u in args.unit_list.split(",")][:args.units]
    unit_lrs = [float(v) for v in args.unit_lr.split(",")]
    classes = [int(c) for c in args.class_list.split(",")][:args.classes]
    eps1s = [float(v) for v in args.ppgn_eps1.split(",")]
    eps3s = [float(v) for v in args.ppgn_eps3.split(",")]
    ppgn_lrs = [float(v) for v in args.ppgn_lr.split(",")]
    for kind, targets in (("classes", classes), ("units", units)):
        rows: dict[str, dict[str, list]] = {}

        def add(method: str, images: torch.Tensor, act: torch.Tensor, prob: torch.Tensor | None, secs: float):
            r = rows.setdefault(method, {"images": [], "act": [], "prob": [], "seconds": 0.0})  # noqa: B023
            r["images"].append(images)
            r["act"].append(act)
            if prob is not None:
                r["prob"].append(prob)
            r["seconds"] += secs

        for t in targets:
            obj = class_logit(t) if kind == "classes" else channel("blocks.5", t)
            px = visualize(model, None, obj, batch=ch, steps=args.steps, size=args.size, progress=False)
            add("pixel", px.images, px.final, None, px.seconds)
            for lr in [8.0] if kind == "classes" else unit_lrs:
                dg = dgn_am(model, gen, obj, steps=args.steps, chains=ch, size=args.size, lr=lr, seed=t,
                            monitor_class=t if kind == "classes" else None)
                name = "dgn_am" if kind == "classes" or len(unit_lrs) == 1 else f"dgn_am_lr{lr:g}"
                add(name, dg.images, dg.activation[-1], None if dg.probability is None else dg.probability[-1],
                    dg.seconds)
            if kind == "classes":
                for grad in args.ppgn_gradients.split(","):
                    for pr, eps1, eps3, pp_lr in itertools.product(prior_names, eps1s, eps3s, ppgn_lrs):
                        step = PPGNSettings(eps1=eps1, eps3=eps3, lr=pp_lr, gradient=grad)
                        pp = ppgn_h(model, gen, priors[pr], t, settings=step, steps=args.steps, chains=ch,
                                    size=args.size, upper=gen.upper_bounds.cpu(), seed=t,
                                    save_every=args.ppgn_save_every or None)
                        name = (f"ppgn_h_{grad}" + (f"_{pr}" if len(prior_names) > 1 or pr != "dae" else "")
                                + (f"_eps1_{eps1:g}" if len(eps1s) > 1 else "")
                                + (f"_eps3_{eps3:g}" if len(eps3s) > 1 else "")
                                + (f"_lr{pp_lr:g}" if len(ppgn_lrs) > 1 else ""))
                        # the class logit of the PPGN-h samples, for the same comparison of activations
                        add(name, pp.images, logits_of(pp.images)[:, t], pp.probability[-1], pp.seconds)
                        first = (pp.probability >= 0.9).float().argmax(0)
                        reached = (pp.probability >= 0.9).any(0)
                        rows[name].setdefault("reached", []).append(reached)
                        rows[name].setdefault("first", []).append(torch.where(reached, first, -1))
                        if pp.samples is not None:
                            rows[name].setdefault("kept", []).append(pp.samples)
            if kind == "classes":
                rows["pixel"]["prob"].append(torch.softmax(logits_of(px.images), 1)[:, t])
            print(kind, t, "done", flush=True)
        out = {}
        for method, r in rows.items():
            images = torch.cat(r["images"])
            entry = {"activation_mean": float(torch.cat(r["act"]).mean()), **naturalness(r["images"]),
                     "seconds_per_sample": r["seconds"] / len(images), "samples": len(images)}
            if r.get("kept") and sum(len(k) for k in r["kept"]):
                # the authors' output: the images along the chains that passed p >= 0.9, every --ppgn-save-every steps
                entry["kept_along_chains"] = {"save_every": args.ppgn_save_every, **naturalness(r["kept"]),
                                              "samples": sum(len(k) for k in r["kept"]),
                                              "per_target": [len(k) for k in r["kept"]]}
            if r["prob"]:
                entry["probability_mean"] = float(torch.cat(r["prob"]).mean())
            if "reached" in r:
                entry["fraction_chains_p_ge_0.9_within_steps"] = float(torch.cat(r["reached"]).float().mean())
            if "pixel" in rows and method != "pixel":
                entry["activation_fraction_of_pixel"] = entry["activation_mean"] / float(
                    torch.cat(rows["pixel"]["act"]).mean())
            out[method] = entry
            if not args.no_figures and targets:
                import torchvision.utils as vutils
                vutils.save_image(images[::ch][:10], os.path.join("assets", f"priors_{kind}_{method}.png"), nrow=10)
        results[kind] = out
    results["generator"] = {"steps": len(hist), "train_seconds_this_run": t_gen,
                            "final_pixel_mse": hist[-1]["pixel"] if hist else None}
    results["naturalness_features"] = second_name
    results["command"] = (f"python benchmarks/priors_experiment.py --gen-steps {args.gen_steps} --steps {args.steps}"
                          f" --size {args.size} --chains {args.chains} --classes {args.classes} --units {args.units}"
                          f" --class-list {args.class_list} --ppgn-priors {args.ppgn_priors}"
                          f" --ppgn-eps1 {args.ppgn_eps1} --ppgn-eps3 {args.ppgn_eps3}"
                          f" --ppgn-gradients {args.ppgn_gradients} --ppgn-lr {args.ppgn_lr}"
                          f" --ppgn-save-every {args.ppgn_save_every} --unit-list {args.unit_list}"
                          f" --unit-lr {args.unit_lr}")
    results["dgn_am_lr"] = {"classes": 8.0, "units": unit_lrs}
    results["ppgn_h_priors"] = prior_names
    results["ppgn_h_eps1"] = eps1s
    results["ppgn_h_eps3"] = eps3s
    results["ppgn_h_lr"] = ppgn_lrs
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
