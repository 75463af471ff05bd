from PIL import Image

from invviz.cli import main


def test_cli_writes_png(tmp_path, capsys):
    out = tmp_path / "vis.png"
    code = main(["visualize", "resnet18", "layer2", "3,4", "--no-pretrained", "--steps", "3", "--size", "32",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    with Image.open(out) as im:
        assert im.size == (2 * 32 + 6, 32 + 4)
    assert "wrote" in capsys.readouterr().out


def test_cli_layers_and_errors(capsys):
    assert main(["layers", "resnet18", "--no-pretrained", "--size", "64"]) == 0
    assert "layer3" in capsys.readouterr().out
    assert main(["visualize", "resnet18", "layer_9", "0", "--no-pretrained", "--steps", "1", "--size", "32"]) == 2
    assert "no layer 'layer_9'" in capsys.readouterr().err
