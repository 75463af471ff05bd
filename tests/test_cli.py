"""The command line: every invviz error is one line on stderr and exit code 2; defaults show in --help."""

import argparse
import os
import subprocess
import sys

import pytest
from PIL import Image

from invviz.cli import build_parser, main, units


def test_cli_writes_png(tmp_path, capsys):
    out = tmp_path / "vis.png"
    code = main(["visualize", "resnet18", "layer2", "3,4", "--no-pretrained", "--steps", "3", "--size", "32",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    with Image.open(out) as im:
        assert im.size == (2 * 32 + 6, 32 + 4)
    assert "wrote" in capsys.readouterr().out


def test_cli_layers_filter_and_errors(capsys):
    assert main(["layers", "resnet18", "--no-pretrained", "--size", "64", "--filter", "layer3.1"]) == 0
    shown = capsys.readouterr().out
    assert "layer3.1.conv1" in shown and "layer2" not in shown
    assert main(["visualize", "resnet18", "layer_9", "0", "--no-pretrained", "--steps", "1", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no layer 'layer_9'" in err


def test_unit_ranges():
    assert units("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    for bad in ("3-1", "a", "-2", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            units(bad)


@pytest.mark.parametrize("argv, fragment", [
    (["visualize", "resnet18", "layer1", "0", "--no-pretrained", "--device", "cuda:0"], "no CUDA GPU"),
    (["visualize", "resnet18", "layer1", "0", "--no-pretrained", "--out", "/proc/forbidden/x.png"], "cannot write"),
    (["invert", "resnet18", "no_such_photo", "--no-pretrained"], "neither an image file"),
    (["invert", "/etc/hostname", "chelsea"], "checkpoint"),
    (["visualize", "no_such_model_xyz", "layer1", "0"], "no timm or torchvision model"),
    (["align", "resnet18", "--no-pretrained", "--data", "/nonexistent"], "neither a folder"),
    (["atlas", "resnet18", "--no-pretrained", "--layers", "layer9", "--out", "/tmp/x"], "no layer"),
])
def test_cli_errors_are_one_line_and_exit_2(argv, fragment, capsys):
    if "cuda" in " ".join(argv):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("invviz: error:") and fragment in err


def test_bad_options_are_argparse_errors_and_help_shows_defaults(capsys):
    for argv in (["visualize", "resnet18", "layer1", "0", "--lr", "-1"], ["visualize", "m", "l", "0", "--steps", "0"],
                 ["visualize", "m", "l", "0", "--size", "big"]):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(argv)
        assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err
    text = subprocess.run([sys.executable, "-m", "invviz", "visualize", "--help"], capture_output=True, text=True,
                          env={**os.environ}).stdout
    assert "(default: 512)" in text and "(default: 0.05)" in text


def test_cli_defaults_are_the_library_defaults():
    from invviz.align.wrapper import ALIGN_STEPS
    from invviz.microscope import ATLAS_LR, ATLAS_LR_SCHEDULE, ATLAS_STEPS, ATLAS_TRANSFORMS

    args = build_parser().parse_args(["align", "resnet18", "--data", "chelsea"])
    assert args.align_steps == ALIGN_STEPS
    args = build_parser().parse_args(["atlas", "resnet18", "--layers", "layer1", "--out", "site"])
    assert (args.steps, args.lr, args.lr_schedule, args.transforms) == (ATLAS_STEPS, ATLAS_LR, ATLAS_LR_SCHEDULE,
                                                                        ATLAS_TRANSFORMS)
