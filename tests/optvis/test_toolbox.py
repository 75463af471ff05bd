"""The rest of the feature-visualization toolbox, each against an oracle: CPPN, starting from an image, feature
accentuation, MaCo's importance map, building blocks (NMF), redirected ReLU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import flags_of, hooks_on
from torch import nn

import invviz
from invviz.errors import ObjectiveError, ParameterizationError
from invviz.models import Preprocessing
from invviz.optvis import CPPNImage, channel, make_param, render

PREP = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 32, 32), source="test")


def convnet() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    net.invviz_preprocessing = PREP
    return net.eval()


def test_cppn_objective_rises_and_draws_at_any_resolution():
    net = convnet()
    p = CPPNImage(32, batch=2, rng=torch.Generator().manual_seed(0))
    r = render(net, channel("3", [1, 2]), p, steps=30, lr=0.01)
    first, last = r.history[:3].mean(0), r.history[-3:].mean(0)
    assert bool((last > first).all()) and float(last.sum()) > 1.2 * float(first.sum())
    with torch.no_grad():
        small, big = p.draw(32), p.draw(128)
    down = F.interpolate(big, size=32, mode="bilinear", antialias=True, align_corners=False)
    assert big.shape == (2, 3, 128, 128) and float((down - small).abs().mean()) < 0.01  # one function, two grids
    assert float((p.select(1)() - small[1:]).abs().max()) < 1e-6


@pytest.mark.parametrize("kind", ["pixel", "fft"])
def test_starting_from_an_image_reproduces_it_exactly(kind):
    image = torch.rand(2, 3, 20, 24) * 0.98 + 0.01
    p = make_param(kind, (20, 24), 2, init=image)
    with torch.no_grad():
        assert float((p() - image).abs().max()) < 1e-5
    r = invviz.visualize(convnet(), "3", 1, init=image[:1], steps=3, size=(20, 24), progress=False,
                         transforms="none", snapshots=[0])
    assert float((r.snapshots[0] - image[:1]).abs().max()) < 1e-5
    with pytest.raises(ParameterizationError, match="MaCo"):
        make_param("maco", 16, 1, init=torch.rand(1, 3, 16, 16))
    with pytest.raises(ParameterizationError, match="px"):
        make_param(kind, 16, 1, init=torch.rand(1, 3, 20, 20))


def test_accentuation_stays_close_to_the_image_where_plain_optimization_leaves_it():
    net = convnet()
    photo = invviz.data.load_photo("chelsea", 32)
    common = dict(reg_layer="1", steps=40, lr=0.05, transforms="none", param="pixel")
    plain = invviz.accentuate(net, "3", 2, photo, reg_weight=0.0, **common)
    kept = invviz.accentuate(net, "3", 2, photo, reg_weight=0.2, **common)
    for r in (plain, kept):  # the objective rises in both
        assert float(r.monitored["objective"][-1]) > float(r.monitored["objective"][0])
    bound = 0.05
    assert float(kept.monitored["distance"].max()) < bound < float(plain.monitored["distance"][-1])


def test_importance_map_falls_where_the_model_looks():
    """A model that only sees the top-left quadrant: >= 90% of MaCo's map lies there."""

    class Quadrant(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            h, w = x.shape[2:]
            return self.conv(x[:, :, : h // 2, : w // 2])

    net = Quadrant().eval()
    net.invviz_preprocessing = PREP
    r = invviz.visualize(net, "conv", 1, steps=20, size=32, importance=True, progress=False, transforms="none")
    imp = r.importance[0, 0]
    assert r.importance.shape == (1, 1, 32, 32) and float(imp.max()) == pytest.approx(1.0)
    assert float(imp[:16, :16].sum() / imp.sum()) >= 0.9


def test_building_blocks_match_scikit_learn_on_the_same_matrix():
    from sklearn.decomposition import NMF

    net = convnet()
    photo = invviz.data.load_photo("astronaut", 32)
    f = invviz.factorize(net, "3", photo, 3, visualize=True, steps=4, size=32)
    with torch.no_grad():
        acts = invviz.models.features(net, ["3"], photo)["3"][0].double()
    a = acts.reshape(8, -1).T.numpy()
    ref = NMF(n_components=3, init="nndsvda", max_iter=500, random_state=0)
    w = ref.fit_transform(a)
    np.testing.assert_allclose(f.directions.numpy(), ref.components_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.maps.reshape(3, -1).T.numpy(), w, rtol=1e-4, atol=1e-5)
    assert f.reconstruction_error == pytest.approx(ref.reconstruction_err_, rel=1e-6)
    assert 0 <= f.relative_error < 1 and f.images.shape == (3, 3, 32, 32)
    with pytest.raises(ObjectiveError, match="after a ReLU"):
        invviz.factorize(net, "2", photo, 3, visualize=False)  # the conv before the ReLU: negative activations


def test_redirected_relu_moves_a_unit_that_is_dead_at_the_start():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 1)).eval()
    with torch.no_grad():  # ReLU unit 0 is off at the grey start (0.75 - 1 < 0) and turns on for bright images
        net[0].weight[0] = 0.5
        net[0].bias[0] = -1.0
        net[2].weight.zero_()
        net[2].weight[0, 0] = 1.0
    net.invviz_preprocessing = PREP
    flags = flags_of(net)
    plain = invviz.visualize(net, "2", 0, steps=40, size=16, param="pixel", transforms="none", progress=False,
                             lr=0.1)
    assert float(plain.history[-1]) == float(plain.history[0]) == pytest.approx(float(net[2].bias[0]))
    redirected = invviz.visualize(net, "2", 0, steps=40, size=16, param="pixel", transforms="none",
                                  progress=False, lr=0.1, redirected_relu=30)
    assert float(redirected.final[0]) > float(plain.final[0]) + 0.1
    assert flags_of(net) == flags and hooks_on(net) == 0 and net[1].inplace  # modules restored
