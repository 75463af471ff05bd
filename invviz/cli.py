"""Command line: `invviz layers MODEL` and `invviz visualize MODEL LAYER UNIT`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import InvvizError


def _units(text: str) -> list[int]:
    try:
        return [int(u) for u in text.split(",") if u.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"UNIT must be an int or comma-separated ints like 3,7,9; got {text!r}") from None


def _size(text: str) -> int | tuple[int, int]:
    parts = [int(p) for p in text.lower().split("x")]
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invviz", description="Feature visualization for timm/torchvision models.")
    sub = parser.add_subparsers(dest="command", required=True)

    lay = sub.add_parser("layers", help="list a model's layers with output shapes and layouts")
    lay.add_argument("model", help="timm or torchvision model name, e.g. tf_efficientnet_lite0, resnet18")
    lay.add_argument("--size", type=_size, default=None, help="input size for the shape pass (default: native)")
    lay.add_argument("--no-pretrained", action="store_true", help="random weights (no download)")

    vis = sub.add_parser("visualize", help="render a feature visualization to a PNG")
    vis.add_argument("model")
    vis.add_argument("layer", help="layer name, see `invviz layers MODEL`")
    vis.add_argument("unit", type=_units, help="channel index, or comma-separated indices (one image each)")
    vis.add_argument("--steps", type=int, default=512)
    vis.add_argument("--size", type=_size, default=128, help="image size, e.g. 128 or 128x160")
    vis.add_argument("--batch", type=int, default=None, help="images per unit set (default: one per unit)")
    vis.add_argument("--param", default="fft", choices=["fft", "pixel", "maco"])
    vis.add_argument("--transforms", default="standard", choices=["standard", "none"])
    vis.add_argument("--lr", type=float, default=0.05)
    vis.add_argument("--seed", type=int, default=0)
    vis.add_argument("--device", default=None, help="e.g. cuda (default: cuda when available, else cpu)")
    vis.add_argument("--checkpoint", default=None, help="state dict file to load instead of downloading weights")
    vis.add_argument("--no-pretrained", action="store_true", help="random weights (no download)")
    vis.add_argument("--no-progress", action="store_true")
    vis.add_argument("--out", default="invviz.png", help="output PNG path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from . import list_layers, load_model, visualize

    args = build_parser().parse_args(argv)
    try:
        if args.command == "layers":
            model = load_model(args.model, pretrained=not args.no_pretrained)
            print(list_layers(model, size=args.size))
            return 0
        model = load_model(args.model, pretrained=not args.no_pretrained and args.checkpoint is None,
                           checkpoint=args.checkpoint)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        units = args.unit if len(args.unit) > 1 else args.unit[0]
        result = visualize(model, args.layer, units, steps=args.steps, size=args.size, batch=args.batch,
                           param=args.param, transforms=args.transforms, lr=args.lr, seed=args.seed,
                           progress=not args.no_progress)
        path = result.save(args.out)
        final = ", ".join(f"{v:.4g}" for v in result.final.tolist())
        print(f"wrote {path}: {args.model} {args.layer} unit(s) {args.unit}, objective {final},"
              f" {result.steps_per_second:.1f} steps/s on {device}")
        return 0
    except InvvizError as err:
        print(f"invviz: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
