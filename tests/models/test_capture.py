import pytest
import torch
from conftest import flags_of, hooks_on, small_swin, small_vit
from torch import nn

from invviz.errors import ImageSizeError, LayerNotFoundError, LayerReuseError
from invviz.models import Capture, forward_events, list_layers


def test_capture_matches_forward_and_removes_hooks(resnet18):
    x = torch.rand(2, 3, 64, 64)
    before = flags_of(resnet18)
    with torch.no_grad(), Capture(resnet18, ["layer2", "layer3"]) as cap:
        feats = cap.run(x)
        again = cap.run(x)
    ref = resnet18.layer3(resnet18.layer2(resnet18.layer1(resnet18.maxpool(resnet18.relu(resnet18.bn1(resnet18.conv1(x)))))))
    assert torch.allclose(feats["layer3"], ref, atol=1e-5)
    assert torch.equal(feats["layer3"], again["layer3"])
    assert feats["layer2"].shape == (2, 128, 8, 8)
    assert hooks_on(resnet18) == 0
    assert flags_of(resnet18) == before


def test_hooks_removed_after_error(resnet18):
    with pytest.raises(ImageSizeError, match="channels"), Capture(resnet18, ["layer2"]) as cap:
        cap.run(torch.rand(1, 5, 64, 64))  # wrong channel count: the model's own complaint, typed
    assert hooks_on(resnet18) == 0


def test_clone_protects_against_inplace_relu(resnet18):
    # torchvision's stem: bn1 -> relu(inplace=True) overwrites bn1's output unless it is cloned
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        with Capture(resnet18, ["bn1"], stop_early=False) as cap:
            cloned = cap.run(x)["bn1"]
        with Capture(resnet18, ["bn1"], clone=False, stop_early=False) as cap:
            shared = cap.run(x)["bn1"]
        ref = resnet18.bn1(resnet18.conv1(x))
    assert (ref < 0).any()
    assert torch.allclose(cloned, ref, atol=1e-6)
    assert (shared >= 0).all()  # overwritten by the in-place ReLU: why invviz clones


def test_reused_module_detected_and_selectable(resnet18):
    # BasicBlock calls self.relu twice; the second call is the block's output
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(LayerReuseError, match=r"ran 2 times.*layer1\.0\.relu@1"), Capture(resnet18, ["layer1.0.relu"]) as cap:
        cap.run(x)
    assert hooks_on(resnet18) == 0
    with torch.no_grad(), Capture(resnet18, ["layer1.0.relu@1", "layer1.0"]) as cap:
        for _ in range(2):
            feats = cap.run(x)
            assert torch.equal(feats["layer1.0.relu@1"], feats["layer1.0"])


def test_forward_stops_after_deepest_layer(resnet18):
    ran = []
    handle = resnet18.layer4.register_forward_hook(lambda *a: ran.append(1))
    try:
        with torch.no_grad(), Capture(resnet18, ["layer2"]) as cap:
            cap.run(torch.rand(1, 3, 64, 64))  # the first run is a full probe
            n_probe = len(ran)
            cap.run(torch.rand(1, 3, 64, 64))
            cap.run(torch.rand(1, 3, 64, 64))
    finally:
        handle.remove()
    assert n_probe == 1 and len(ran) == 1


def test_unknown_layer_lists_close_names(resnet18):
    with pytest.raises(LayerNotFoundError, match="layer3"):
        Capture(resnet18, ["layer_3"])
    with pytest.raises(KeyError):  # also a KeyError for code that does not know invviz
        Capture(resnet18, ["nope"])


@pytest.mark.parametrize("kwargs, prefix", [({}, 1), ({"reg_tokens": 4}, 5), ({"class_token": False, "global_pool": "avg"}, 0)])
def test_vit_tokens_become_grid_without_prefix(kwargs, prefix):
    model = small_vit(img_size=(64, 96), **kwargs)  # non-square: the grid is 4x6, not sqrt(N)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad(), Capture(model, ["blocks.1"]) as cap:
        feats = cap.run(x)
        raw = cap.run(x, raw=True)["blocks.1"]
    layout = cap.layouts["blocks.1"]
    assert (layout.kind, layout.grid, layout.prefix, layout.channels) == ("tokens", (4, 6), prefix, 48)
    f = feats["blocks.1"]
    assert f.shape == (2, 48, 4, 6)
    # channel c at grid position (i, j) is token prefix + i*6 + j, feature c
    assert torch.equal(f[1, 5, 2, 3], raw[1, prefix + 2 * 6 + 3, 5])


def test_swin_nhwc_stages_give_channels():
    model = small_swin()
    with torch.no_grad(), Capture(model, ["layers.0", "layers.1"]) as cap:
        feats = cap.run(torch.rand(1, 3, 64, 64))
        raw = cap.run(torch.rand(1, 3, 64, 64), raw=True)
    assert raw["layers.1"].shape == (1, 8, 8, 48)  # NHWC from timm
    assert cap.layouts["layers.1"].kind == "NHWC"
    assert feats["layers.0"].shape == (1, 24, 16, 16) and feats["layers.1"].shape == (1, 48, 8, 8)


def test_list_layers_shapes_and_reuse(resnet18):
    table = list_layers(resnet18, size=64)
    rows = {r.name: r for r in table}
    assert rows["layer3"].shape == (1, 256, 4, 4) and rows["layer3"].channels == 256
    assert rows["fc"].layout == "vector" and rows["fc"].channels == 1000
    assert rows["layer1.0.relu"].calls == 2
    assert "layer3" in str(table)
    assert hooks_on(resnet18) == 0


def test_model_output_is_empty_name():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    x = torch.rand(3, 3, 2, 2)
    with torch.no_grad(), Capture(model, [""]) as cap:
        out = cap.run(x)[""]
    assert out.shape == (3, 4, 1, 1)
    assert torch.allclose(out[:, :, 0, 0], model(x))


def test_capture_replaces_a_layers_output_and_restores_the_forward(resnet18):
    """Read and write through one mechanism: the replaced output flows downstream and is what a capture of the
    same layer reads; on exit the forward is the model's own again; bad replacements are typed errors."""
    from invviz.errors import SettingError

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        plain = resnet18(x)
        with Capture(resnet18, ["layer3"], replace={"layer3": lambda out: torch.zeros_like(out)}) as cap:
            zeroed = cap.forward(x)
            feats = cap.run(x)
        after = resnet18(x)
    assert torch.equal(feats["layer3"], torch.zeros_like(feats["layer3"]))
    # layer3 zeroed: layer4 sees only its (zero) input, so the logits are the head applied to layer4(0)
    want = resnet18.fc(torch.flatten(resnet18.avgpool(resnet18.layer4(torch.zeros(1, 256, 4, 4))), 1))
    assert torch.allclose(zeroed, want, atol=1e-6) and not torch.allclose(zeroed, plain)
    assert torch.equal(after, plain) and hooks_on(resnet18) == 0
    with pytest.raises(SettingError, match="function"):
        Capture(resnet18, [], replace={"layer3": 0})
    with pytest.raises(LayerNotFoundError):
        Capture(resnet18, [], replace={"layer9": lambda o: o})
    with pytest.raises(SettingError, match="inside"):
        Capture(resnet18, [], replace={"layer3": lambda o: o}).forward(x)


def test_replace_picks_one_call_of_a_reused_module():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
    x = torch.randn(2, 4)
    with Capture(net, [], replace={"1@1": lambda out: out * 0}) as cap:
        out = cap.forward(x)
        again = cap.forward(x)  # the call count starts again every forward
    assert torch.equal(out, torch.zeros(2, 4)) and torch.equal(again, out)
    with Capture(net, [], replace={"1@0": lambda out: out * 0}) as cap:
        first = cap.forward(x)
    assert torch.equal(first, torch.relu(net[2](torch.zeros(2, 4))))


def test_forward_events_list_the_modules_in_the_order_they_run(resnet18):
    events = forward_events(resnet18, torch.rand(1, 3, 32, 32))
    starts = [name for kind, name in events if kind == "start"]
    assert starts[:3] == ["", "conv1", "bn1"] and starts.index("layer1") < starts.index("layer4") < starts.index("fc")
    assert ("end", "layer3") in events and hooks_on(resnet18) == 0


def test_replace_from_input_computes_out_of_place_and_restores_the_flag():
    """A FromInput replacement sees the layer's input (an in-place ReLU would have overwritten it), None keeps the
    output, and the in-place flag and hooks are the model's own again on exit, also after an error."""
    from invviz.models import FromInput

    relu = nn.ReLU(inplace=True)
    net = nn.Sequential(nn.Linear(4, 4), relu)
    x = torch.randn(8, 4)
    pre = net[0](x).detach()
    with torch.no_grad(), Capture(net, [], replace={"1": FromInput(lambda t: t * 2)}) as cap:
        assert relu.inplace is False
        doubled = cap.forward(x)
    assert torch.allclose(doubled, pre * 2) and relu.inplace is True and hooks_on(net) == 0
    with torch.no_grad(), Capture(net, [], replace={"1": FromInput(lambda t: None)}) as cap:
        kept = cap.forward(x)
    assert torch.equal(kept, pre.clamp(min=0))
    with pytest.raises(ZeroDivisionError), Capture(net, [], replace={"1": FromInput(lambda t: 1 / 0)}) as cap:
        cap.forward(x)
    assert relu.inplace is True and hooks_on(net) == 0
