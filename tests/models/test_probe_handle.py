"""The probe as the handle every verb takes: a bare model gets one probe per call, a Probe passed in is used as it
is (its preprocessing and layouts reach every verb), and no verb builds probes of its own beyond that."""

import warnings

import pytest
import torch
from conftest import flags_of, hooks_on
from torch import nn

import invviz
from invviz.align import FeatureAligned
from invviz.errors import SettingError
from invviz.ifv import match, realize, recover_objective
from invviz.models import Preprocessing, Probe, as_probe, features
from invviz.optvis import accentuate, class_logit, factorize
from invviz.priors import CompactGenerator, dgn_am, ppgn_h

PREP = Preprocessing(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 16, 16), source="test")


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.05


def gen() -> CompactGenerator:
    torch.manual_seed(1)
    return CompactGenerator(code_dim=8, size=32, width=4).eval()


VERBS = {
    "visualize": lambda m, tmp: invviz.visualize(m, "3", [0, 1], steps=2, size=16, progress=False),
    "invert": lambda m, tmp: invviz.invert(m, image(), layer="3", steps=2),
    "top_units": lambda m, tmp: invviz.top_units(m, "3", image(), k=2),
    "accentuate": lambda m, tmp: accentuate(m, "3", 0, image(), reg_layer="1", steps=2),
    "factorize": lambda m, tmp: factorize(m, "1", image(), 2, steps=2, size=16),
    "recover_objective": lambda m, tmp: recover_objective(m, "3", image(), points=1),
    "realize": lambda m, tmp: realize(m, "3", torch.eye(8)[0], size=16, adam_steps=2, lbfgs_steps=1),
    "dgn_am": lambda m, tmp: dgn_am(m, gen(), class_logit(0), steps=2),
    "ppgn_h": lambda m, tmp: ppgn_h(m, gen(), lambda h: h, 0, steps=2),
    "atlas": lambda m, tmp: invviz.atlas(m, "3", tmp, steps=2, size=16, batch=8, data=None, progress=False),
    "features": lambda m, tmp: features(m, "3", image()),
    "concepts": lambda m, tmp: invviz.concepts(m, "3", torch.stack([image(0), image(1), image(2)]), 2, method="pca",
                                               size=16, top_n=1),
}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_each_verb_builds_one_probe_from_a_model_and_none_from_a_probe(verb, tmp_path):
    """Before the probe was the handle, invert built 3 probes a call, realize 5 and an atlas of 4 batches 5."""
    model = net()
    flags = flags_of(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = Probe.built
        VERBS[verb](Probe(model, preprocessing=PREP), tmp_path / "a")
        assert Probe.built - before == 1, f"{verb} built probes of its own beside the one it was given"
        before = Probe.built
        VERBS[verb](model, tmp_path / "b")
        assert Probe.built - before == 1, f"{verb} built {Probe.built - before} probes from a bare model"
    assert flags_of(model) == flags and hooks_on(model) == 0


def test_match_and_the_wrapper_count_their_probes():
    a, b = net(), net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa, pb = Probe(a, preprocessing=PREP), Probe(b, preprocessing=PREP)
        before = Probe.built
        match(pa, "3", 0, pb, "3", size=16, adam_steps=2, lbfgs_steps=1, reopt_steps=2, points=1)
        assert Probe.built == before
        FeatureAligned(pa, "3", steps=1).encode(torch.rand(1, 3, 16, 16))
        assert Probe.built - before == 2  # one for its trained copy, one for its frozen teacher


def test_a_probes_preprocessing_reaches_every_verb():
    """The same model under two preprocessings: the verbs report and use the probe's, not the model's default."""
    model = net()
    other = Preprocessing(mean=(0.1,) * 3, std=(0.9,) * 3, input_size=(3, 16, 16), source="other")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = invviz.invert(Probe(model, preprocessing=PREP), image(), layer="3", steps=3)
        b = invviz.invert(Probe(model, preprocessing=other), image(), layer="3", steps=3)
        assert a.preprocessing == PREP and b.preprocessing == other
        assert not torch.equal(a.latent, b.latent)
        units = invviz.top_units(Probe(model, preprocessing=other), "3", image(), k=2)
        assert units.preprocessing == other
        f1 = features(Probe(model, preprocessing=other), "3", image())["3"]
        x = (image()[None] - 0.1) / 0.9
        assert torch.allclose(f1, model[:4](x), atol=1e-6)


def test_as_probe_refuses_options_beside_a_probe():
    p = Probe(net(), preprocessing=PREP)
    assert as_probe(p) is p and as_probe(p, ["3"]).layers == ["3"] and p.layers == []
    with pytest.raises(SettingError, match="belong to the Probe"):
        as_probe(p, preprocessing=PREP)
    with pytest.raises(invviz.errors.LayerNotFoundError, match="reads no layer"):
        p.channels()


def test_views_share_what_the_probe_learned():
    p = Probe(net(), preprocessing=PREP)
    v = p.reading(["3"])
    v.channels("3")
    assert p._layout_cache and p._layout_cache is v._layout_cache
