"""Command line: `invviz layers`, `invviz visualize`, `invviz align`, `invviz invert`, `invviz atlas`,
`invviz concepts`.

Every invviz error becomes one line on stderr and exit code 2; `--help` shows each option's default.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence

from .settings import (
    ALIGN_LR,
    ALIGN_PRESERVE,
    ALIGN_STEPS,
    ALIGN_TRAINABLE,
    ATLAS_BATCH,
    CONCEPT_METHOD,
    CONCEPT_POSITIONS,
    DEFAULT_RECIPE,
    INVERT_PARAM,
    INVERT_STEPS,
    RECIPES,
    RENDER_PARAM,
    RENDER_SIZE,
    TOP_K,
    UNIT_KIND,
    TrainSchedule,
)


def units(text: str) -> list[int]:
    """`"3"`, `"3,7,9"`, `"0-15"` or `"0-3,8,10-11"` -> the unit indices."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"units are ints, comma-separated ints or ranges like 0-15; got"
                                             f" {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"units must be non-negative ints like 3, 3,7,9 or 0-15; got {text!r}")
    return out


def _size(text: str) -> int | tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is an int like 128 or HxW like 128x160; got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"a size is an int like 128 or HxW like 128x160; got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}")
    return value


def _model_args(p: argparse.ArgumentParser, model_help: str = "timm or torchvision model name, e.g."
                " tf_efficientnet_lite0, resnet18") -> None:
    p.add_argument("model", help=model_help)
    p.add_argument("--no-pretrained", action="store_true", help="random weights (no download), drawn from --seed")
    p.add_argument("--checkpoint", default=None, help="state dict file to load instead of downloading weights")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda (default: cuda when available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of --no-pretrained weights and of the run's randomness")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where it is None/False (the help text says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def _recipes_help() -> str:
    return "; ".join(f"{name}: {r.steps} steps of Adam {r.lr} ({r.lr_schedule}), {r.transforms} transforms"
                     for name, r in RECIPES.items())


def _recipe_args(p) -> None:
    """The render recipe and what may override it, as visualize and the atlas take them."""
    p.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES), help="how to optimize: " + _recipes_help())
    p.add_argument("--steps", type=_positive_int, default=None, help="optimization steps (default: the recipe's)")
    p.add_argument("--transforms", default=None, choices=["standard", "fused", "none"],
                   help="random transforms each step: Lucid's standard set, the same draws as one resampling, or"
                        " none (default: the recipe's)")
    p.add_argument("--lr", type=_positive_float, default=None, help="Adam learning rate (default: the recipe's)")
    p.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                   help="Adam's rate over the steps (default: the recipe's)")


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    fmt = _Help
    parser = argparse.ArgumentParser(prog="invviz", formatter_class=fmt, description=(
        "See what units of a pretrained network respond to, and go back from its features to images."))
    parser.add_argument("--version", action="version", version=f"invviz {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    lay = sub.add_parser("layers", help="list a model's layers with output shapes and layouts", formatter_class=fmt)
    _model_args(lay)
    lay.add_argument("--size", type=_size, default=None, help="input size for the shape pass (default: native)")
    lay.add_argument("--filter", default=None, help="only layers whose name contains this text")

    vis = sub.add_parser("visualize", help="render a feature visualization to a PNG", formatter_class=fmt)
    _model_args(vis)
    vis.add_argument("layer", help="layer name, see `invviz layers MODEL`")
    vis.add_argument("unit", type=units, help="channel index, comma-separated indices or a range like 0-15 (one"
                                              " image each)")
    _recipe_args(vis)
    vis.add_argument("--size", type=_size, default=RENDER_SIZE, help="image size, e.g. 128 or 128x160")
    vis.add_argument("--batch", type=_positive_int, default=None, help="images per unit set (default: one per unit)")
    vis.add_argument("--param", default=RENDER_PARAM, choices=["fft", "pixel", "maco", "cppn"], help="parameterization")
    vis.add_argument("--redirected-relu", type=int, default=0, metavar="N",
                     help="let gradient through ReLUs that are off during the first N steps (units that never"
                          " activate otherwise stay grey)")
    vis.add_argument("--no-progress", action="store_true", help="no progress bar")
    vis.add_argument("--out", default="invviz.png", help="output image path (.png, or .jpg and other formats by suffix)")

    ali = sub.add_parser("align", formatter_class=fmt, help="fine-tune a model so that invviz.invert decodes its"
                                                             " latent with the model itself (works under torchrun)")
    _model_args(ali)
    ali.add_argument("--data", required=True, help="image folder (every image under it) or a bundled photo name")
    ali.add_argument("--layer", default=None, help="latent layer (default: the last spatial feature stage)")
    ali.add_argument("--size", type=_size, default=None, help="image size (default: the model's native size)")
    ali.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: --epochs epochs)")
    ali.add_argument("--epochs", type=_positive_int, default=TrainSchedule().epochs, help="passes over the data")
    ali.add_argument("--lr", type=_positive_float, default=ALIGN_LR, help="Adam learning rate")
    ali.add_argument("--batch", type=_positive_int, default=16, help="global batch size (split over ranks)")
    ali.add_argument("--align-steps", type=_positive_int, default=ALIGN_STEPS, help="alignment steps T of the decoder")
    ali.add_argument("--preserve", default=ALIGN_PRESERVE, choices=["auto", "projection", "distill"],
                     help="how predictions are kept: an exact projection (affine heads) or distillation")
    ali.add_argument("--trainable", default=ALIGN_TRAINABLE, choices=["encoder", "all", "lora"],
                     help="what trains: the modules before the latent, everything, or low-rank adapters")
    ali.add_argument("--train-checkpoint", default=None, help="training checkpoint (resumed when it exists)")
    ali.add_argument("--no-resume", action="store_true", help="start afresh even if --train-checkpoint exists")
    ali.add_argument("--no-progress", action="store_true", help="no progress bar")
    ali.add_argument("--out", default="aligned.pt", help="the fine-tuned wrapper (weights only)")

    inv = sub.add_parser("invert", formatter_class=fmt, help="reconstruct an image from a model's features; writes"
                                                              " a side-by-side PNG and prints PSNR/SSIM")
    _model_args(inv, "model name, or a file written by `invviz align`")
    inv.add_argument("image", help="image file, or a bundled photo name such as chelsea")
    inv.add_argument("--layer", default=None, help="layer to invert (default: the model's stride-8 stage)")
    inv.add_argument("--size", type=_size, default=None, help="image size (default: 128, or the wrapper's)")
    inv.add_argument("--steps", type=_positive_int, default=None, help=f"optimization steps (default {INVERT_STEPS})")
    inv.add_argument("--param", default=INVERT_PARAM, choices=["fft", "pixel", "maco"],
                     help="parameterization of optimization-based inversion")
    inv.add_argument("--out", default="invert.png", help="output PNG: the image above its reconstruction")

    add_atlas_parser(sub, fmt)
    add_concepts_parser(sub, fmt)
    return parser


def _device(name: str | None):
    import torch

    from .errors import DeviceError

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} but this machine has no CUDA GPU; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {name} is not supported here; use cpu or cuda")
    return device


def _load(args):
    """The model of the command; random weights (`--no-pretrained`) come from `--seed` (default 0), so every run and
    every rank of a torchrun builds the same network."""
    import torch

    from . import load_model

    torch.manual_seed(getattr(args, "seed", 0))
    return load_model(args.model, pretrained=not args.no_pretrained and args.checkpoint is None,
                      checkpoint=args.checkpoint)


def _load_on_this_rank(args):
    """The command's model on this rank's device under `torchrun` (the process group started), else on `--device`."""
    from .training import distributed as ddp

    ddp.setup()
    return _load(args).to(ddp.device() if ddp.active() else _device(args.device))


def _image(spec: str, size):
    from .data import load_image, load_photo, photo_paths

    if os.path.exists(spec):
        return load_image(spec, size)
    if spec in photo_paths():
        return load_photo(spec, size)
    from .errors import DatasetNotFoundError

    raise DatasetNotFoundError(f"{spec!r} is neither an image file nor a bundled photo ({', '.join(photo_paths())})")


def _check_image_out(path: str) -> None:
    """Before any work: the image output path can be written and names an image format."""
    from .io import check_writable, image_format

    check_writable(path, "image")
    image_format(path)


def _run(args) -> int:

    from . import list_layers, visualize
    if args.command == "layers":
        table = list_layers(_load(args), size=args.size)
        if args.filter:
            table = type(table)(r for r in table if args.filter in r.name)
        print(table)
        return 0
    if args.command == "atlas":
        return run_atlas(args)
    if args.command == "concepts":
        return run_concepts(args)
    if args.command == "visualize":
        _check_image_out(args.out)
        device = _device(args.device)
        model = _load(args).to(device)
        unit = args.unit if len(args.unit) > 1 else args.unit[0]
        result = visualize(model, args.layer, unit, steps=args.steps, size=args.size, batch=args.batch,
                           param=args.param, transforms=args.transforms, lr=args.lr, seed=args.seed,
                           recipe=args.recipe, lr_schedule=args.lr_schedule,
                           redirected_relu=args.redirected_relu, progress=not args.no_progress)
        path = result.save(args.out)
        final = ", ".join(f"{v:.4g}" for v in result.final.tolist())
        print(f"wrote {path}: {args.model} {args.layer} unit(s) {args.unit}, objective {final},"
              f" {result.steps_per_second:.1f} steps/s on {device}")
        return 0
    if args.command == "align":
        return _align(args)
    return _invert(args)


def _align(args) -> int:
    from .align import FeatureAligned, train_aligned
    from .data import image_folder, photo_crops, photo_paths
    from .errors import DatasetNotFoundError
    from .io import check_writable, save_checkpoint
    from .training import distributed as ddp

    if ddp.is_main():
        check_writable(args.out, "checkpoint")
    model = _load_on_this_rank(args)
    wrapper = FeatureAligned(model, args.layer, steps=args.align_steps, size=args.size, preserve=args.preserve,
                             trainable=args.trainable)
    if os.path.isdir(args.data):
        data = image_folder(args.data, size=wrapper.size, batch_size=args.batch, channels=wrapper.channels)
    elif args.data in photo_paths():
        import torch

        crops = photo_crops(64 * args.batch, wrapper.size[0], names=[args.data])
        data = torch.utils.data.DataLoader(crops, batch_size=args.batch, shuffle=True, generator=torch.Generator())
    else:
        raise DatasetNotFoundError(f"--data {args.data!r} is neither a folder nor a bundled photo")
    schedule = TrainSchedule(epochs=args.epochs, max_steps=args.steps, seed=args.seed)
    hist = train_aligned(wrapper, data, schedule=schedule, lr=args.lr,
                         checkpoint=args.train_checkpoint, resume=not args.no_resume, progress=not args.no_progress)
    if ddp.is_main():
        config = {**wrapper.config(), "model": args.model, "pretrained": not args.no_pretrained,
                  "model_checkpoint": args.checkpoint}
        save_checkpoint(args.out, {"modules": {"wrapper": wrapper.state_dict()}, "step": len(hist),
                                   "config": config})
        last = hist[-1] if hist else {}
        print(f"wrote {args.out}: {args.model} latent {wrapper.layer!r} ({wrapper.preserve}), {len(hist)} steps,"
              f" reconstruction loss {last.get('recon', float('nan')):.4g}")
    ddp.barrier()
    return 0


def _invert(args) -> int:
    from . import invert, load_model
    from .align import FeatureAligned
    from .io import load_checkpoint_state

    _check_image_out(args.out)
    device = _device(args.device)
    if os.path.isfile(args.model):
        state = load_checkpoint_state(args.model)
        cfg = state.get("config") or {}
        if "model" not in cfg:
            from .errors import CheckpointError

            raise CheckpointError(f"{args.model} was not written by `invviz align` (no model name in it)")
        base = load_model(cfg["model"], pretrained=bool(cfg.get("pretrained")) and not cfg.get("model_checkpoint"),
                          checkpoint=cfg.get("model_checkpoint")).to(device)
        model = FeatureAligned(base, cfg["layer"], steps=int(cfg["steps"]), size=tuple(cfg["size"]),
                               preserve=cfg["preserve"], trainable=cfg.get("trainable", "encoder")).load(args.model)
        size = model.size
    else:
        model = _load(args).to(device)
        size = args.size or 128
    image = _image(args.image, size)
    rec = invert(model, image, layer=args.layer, steps=args.steps, **({} if isinstance(model, FeatureAligned)
                                                                       else {"param": args.param}))
    path = rec.save(args.out)
    ssim = "" if rec.ssim is None else f", SSIM {float(rec.ssim.mean()):.3f}"
    print(f"wrote {path}: {rec.method} of {rec.layer!r}, PSNR {float(rec.psnr.mean()):.2f} dB{ssim}")
    return 0


def add_atlas_parser(sub, fmt) -> None:
    p = sub.add_parser("atlas", formatter_class=fmt, help="render every unit of some layers into a browsable"
                                                          " static site (works under torchrun)")
    _model_args(p)
    p.add_argument("--layers", required=True, help="comma-separated layer names, e.g. blocks.3,blocks.4")
    p.add_argument("--units", type=units, default=None, help="units of every layer, e.g. 0-31 (default: all)")
    p.add_argument("--data", default="photos", help="image folder for dataset examples, 'photos' (the bundled"
                                                    " photos) or 'none'")
    _recipe_args(p)
    p.add_argument("--size", type=_positive_int, default=RENDER_SIZE, help="render size in px")
    p.add_argument("--batch", type=_positive_int, default=ATLAS_BATCH, help="units rendered together")
    p.add_argument("--param", default=RENDER_PARAM, choices=["fft", "pixel", "maco", "cppn"], help="parameterization")
    p.add_argument("--top-k", type=_positive_int, default=TOP_K, help="dataset examples per unit")
    p.add_argument("--attribution", action="store_true", help="captum attribution heat maps of the examples")
    p.add_argument("--kind", default=UNIT_KIND, choices=["channel", "neuron"], help="a unit's objective")
    p.add_argument("--no-resume", action="store_true", help="render units already on disk again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output folder (index.html inside)")


def run_atlas(args) -> int:
    from .microscope import atlas
    from .training import distributed as ddp

    model = _load_on_this_rank(args)
    result = atlas(model, [name.strip() for name in args.layers.split(",") if name.strip()], args.out,
                   units=args.units, recipe=args.recipe, steps=args.steps, size=args.size, batch=args.batch,
                   param=args.param, lr=args.lr, lr_schedule=args.lr_schedule, transforms=args.transforms,
                   seed=args.seed,
                   data=None if args.data == "none" else args.data, top_k=args.top_k,
                   attribution=args.attribution, resume=not args.no_resume, progress=not args.no_progress,
                   title=args.model, kind=args.kind)
    if ddp.is_main():
        print(f"wrote {result.html}: {result.rendered} units rendered, {result.skipped} already on disk,"
              f" {result.seconds:.1f} s")
    return 0


def add_concepts_parser(sub, fmt) -> None:
    p = sub.add_parser("concepts", formatter_class=fmt, help="learn a layer's concepts over a dataset and write them"
                                                             " with their evidence as a browsable site")
    _model_args(p)
    p.add_argument("--layer", required=True, help="layer name, see `invviz layers MODEL`")
    p.add_argument("--data", default="photos", help="image folder, or 'photos' (the bundled photos)")
    p.add_argument("--k", type=_positive_int, required=True, help="number of concepts")
    p.add_argument("--method", default=CONCEPT_METHOD, choices=["nmf", "sae", "pca"],
                   help="dictionary: NMF (non-negative layers), a TopK sparse autoencoder, or PCA")
    p.add_argument("--size", type=_positive_int, default=None, help="side images are fed at (default: native)")
    p.add_argument("--positions", type=_positive_int, default=CONCEPT_POSITIONS, help="activation vectors drawn per image")
    p.add_argument("--top-n", type=_positive_int, default=TOP_K, help="examples kept per concept")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help=f"render steps for the concepts (default: the fast recipe's {RECIPES['fast'].steps})")
    p.add_argument("--render-size", type=_positive_int, default=RENDER_SIZE, help="render size in px")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output folder: concepts.pt, concepts.png and index.html")


def run_concepts(args) -> int:
    from .data import photo_paths
    from .dictionary import concepts
    from .errors import DatasetNotFoundError
    from .io import check_writable, save_figure
    from .microscope import atlas
    from .training import distributed as ddp

    if not (args.data == "photos" or os.path.isdir(args.data)):
        raise DatasetNotFoundError(f"--data {args.data!r} is neither an image folder nor 'photos' (the bundled photos:"
                                   f" {', '.join(photo_paths())})")
    if ddp.is_main():
        check_writable(os.path.join(args.out, "concepts.pt"), "concepts")
    model = _load_on_this_rank(args)
    result = concepts(model, args.layer, args.data, args.k, method=args.method, size=args.size,
                      positions=args.positions, top_n=args.top_n, seed=args.seed, progress=not args.no_progress)
    site = atlas(model, args.layer, args.out, units={args.layer: []}, concepts=result, steps=args.steps,
                 size=args.render_size, seed=args.seed, data=None, progress=not args.no_progress, title=args.model)
    if ddp.is_main():
        result.save(os.path.join(args.out, "concepts.pt"))
        import matplotlib.pyplot as plt

        fig = result.figure()
        save_figure(fig, os.path.join(args.out, "concepts.png"))
        plt.close(fig)
        print(f"wrote {site.html}: {result.k} {result.method} concepts of {args.layer!r}, held-out R²"
              f" {result.r2:.3f}, {100 * result.dead:.0f}% dead, from {result.settings['images']} images")
    return 0


def main(argv: Sequence[str] | None = None) -> int:

    from .errors import InvvizError

    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    with warnings.catch_warnings(record=not debug) as caught:
        if not debug:
            warnings.simplefilter("always")
        try:
            return _run(args)
        except KeyboardInterrupt:
            print("invviz: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001 - every error is one line (the traceback with --debug)
            if debug:
                raise
            kind = "error" if isinstance(err, InvvizError) else f"unexpected {type(err).__name__}"
            text = " ".join(str(err).split()) or type(err).__name__
            hint = "" if isinstance(err, InvvizError) else " (run again with --debug for the traceback)"
            print(f"invviz: {kind}: {text}{hint}", file=sys.stderr)
            return 2
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught or () if _ours(w)):
                print(f"invviz: warning: {' '.join(message.split())}", file=sys.stderr)


def _ours(w: warnings.WarningMessage) -> bool:
    """invviz's own warnings (and UserWarnings about the model), not other libraries' deprecation notices."""
    return "invviz" in (w.filename or "") or issubclass(w.category, UserWarning) and "torch" not in (w.filename or "")


if __name__ == "__main__":
    raise SystemExit(main())
