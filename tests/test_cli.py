"""The command line: every invviz error is one line on stderr and exit code 2; defaults show in --help."""

import argparse
import os
import subprocess
import sys

import pytest
from PIL import Image

import invviz.settings
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
    assert "(default: fast)" in text and "the recipe's" in text
    text = subprocess.run([sys.executable, "-m", "invviz", "atlas", "--help"], capture_output=True, text=True,
                          env={**os.environ}).stdout
    assert "(default: fast)" in text and "the recipe's" in text


def test_cli_defaults_are_the_library_defaults():
    """Every default the command line shows is the library's own (read here from the functions' signatures), so a
    default changed in one place cannot leave the other behind."""
    import inspect

    from invviz.align import FeatureAligned, train_aligned
    from invviz.training import TrainSchedule

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    base = ["resnet18"]
    cases = {
        ("visualize", *base, "layer1", "0"): {"size": (invviz.visualize, "size"), "param": (invviz.visualize, "param")},
        ("align", *base, "--data", "chelsea"): {
            "align_steps": (FeatureAligned, "steps"), "lr": (train_aligned, "lr"), "epochs": (TrainSchedule, "epochs"),
            "preserve": (FeatureAligned, "preserve"), "trainable": (FeatureAligned, "trainable")},
        ("invert", *base, "chelsea"): {"param": (invviz.invert, "param")},
        ("atlas", *base, "--layers", "layer1", "--out", "site"): {
            name: (invviz.atlas, name) for name in ("recipe", "steps", "size", "param", "batch", "lr", "lr_schedule",
                                                     "transforms", "top_k", "kind")},
        ("concepts", *base, "--layer", "layer1", "--k", "3", "--out", "c"): {
            "method": (invviz.concepts, "method"), "positions": (invviz.concepts, "positions"),
            "top_n": (invviz.concepts, "top_n"), "render_size": (invviz.Concepts.render, "size")},
    }
    for argv, pairs in cases.items():
        args = build_parser().parse_args(list(argv))
        for dest, (fn, name) in pairs.items():
            assert getattr(args, dest) == default(fn, name), (argv[0], dest)
    args = build_parser().parse_args(["visualize", "resnet18", "layer1", "0"])
    assert args.recipe == invviz.settings.DEFAULT_RECIPE and args.recipe in invviz.settings.RECIPES
    assert (args.steps, args.lr, args.lr_schedule, args.transforms) == (None,) * 4  # the recipe's, in the library
    args = build_parser().parse_args(["concepts", "resnet18", "--layer", "layer1", "--k", "3", "--out", "c"])
    assert args.steps is None  # the fast recipe's, in the library


@pytest.mark.parametrize("argv", [
    ["layers", "vit_tiny_patch16_224", "--no-pretrained", "--size", "64"],
    ["layers", "mixer_s32_224", "--no-pretrained", "--size", "64"],
    ["align", "mobilenetv3_small_050", "--no-pretrained", "--data", "chelsea", "--size", "64", "--steps", "1",
     "--batch", "2", "--out", "OUT/m.pt", "--no-progress"],
    ["invert", "resnet18", "chelsea", "--no-pretrained", "--steps", "2", "--size", "32", "--out", "OUT/x.jpg"],
])
def test_every_failure_is_one_line_or_none(argv, tmp_path, capsys):
    """What used to be tracebacks (an assertion inside timm at a size the model does not take, a missing double
    backward) ends in one line and exit 2 — or, where the case was fixed, succeeds."""
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("invviz: warning:")]
    assert "Traceback" not in err
    assert (code == 0 and not lines) or (code == 2 and len(lines) == 1 and lines[0].startswith("invviz: ")), err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(Exception):  # noqa: B017 - whichever error the model raises, --debug lets it through
        main(["layers", "vit_tiny_patch16_224", "--no-pretrained", "--size", "4", "--debug"])


def test_help_and_version_answer_at_once():
    """No torch import before the arguments are read: --help, --version and argument errors in well under 1 s."""
    import time

    for argv in (["--help"], ["--version"], ["visualize", "--help"], ["visualize", "m", "l", "0", "--steps", "0"]):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "invviz", *argv], capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
        assert out.returncode in (0, 2) and "Traceback" not in out.stderr
        assert sorted(times)[1] < 1.0, (argv, times)
    out = subprocess.run([sys.executable, "-m", "invviz", "--version"], capture_output=True, text=True)
    assert out.stdout.startswith("invviz ")
    probe = "import sys, invviz.cli; invviz.cli.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_seed_is_taken_by_every_model_command_and_its_default_shown():
    for cmd in ("layers", "visualize", "align", "invert", "atlas"):
        text = subprocess.run([sys.executable, "-m", "invviz", cmd, "--help"], capture_output=True, text=True).stdout
        assert "--seed" in text and "(default: 0)" in " ".join(text.split()), cmd


def test_a_unit_that_never_activates_is_named(tmp_path, capsys):
    """The README's own example renders two flat grey tiles: the CLI says which and what to do."""
    assert main(["visualize", "resnet18", "layer3", "0-3", "--no-pretrained", "--steps", "16", "--size", "64",
                 "--out", str(tmp_path / "u.png"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "invviz: warning:" in err and "--redirected-relu" in err and err.count("\n") == 1
