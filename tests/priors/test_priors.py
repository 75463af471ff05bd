import functools

import pytest
import torch
from conftest import hooks_on
from torch import nn

from invviz.errors import CheckpointError, ObjectiveError, ParameterizationError, UnitIndexError
from invviz.models import Preprocessing, Probe
from invviz.optvis import channel, class_logit
from invviz.priors import (
    CodeDAE,
    CompactGenerator,
    DeePSiMFc6,
    JointPrior,
    PPGNSettings,
    code_statistics,
    dgn_am,
    load_generator_state,
    ppgn_h,
    train_code_dae,
    train_generator,
)
from invviz.training import TrainSchedule

# (name, shape) of the published DeePSiM fc6 conversion: three FC(4096), then up-convolutions to 256 px
PUBLISHED_FC6 = {
    "defc7.weight": (4096, 4096), "defc7.bias": (4096,), "defc6.weight": (4096, 4096), "defc6.bias": (4096,),
    "defc5.weight": (4096, 4096), "defc5.bias": (4096,),
    "deconv5_0.weight": (256, 256, 4, 4), "deconv5_0.bias": (256,),
    "deconv5_1.weight": (256, 512, 3, 3), "deconv5_1.bias": (512,),
    "deconv4_0.weight": (512, 256, 4, 4), "deconv4_0.bias": (256,),
    "deconv4_1.weight": (256, 256, 3, 3), "deconv4_1.bias": (256,),
    "deconv3_0.weight": (256, 128, 4, 4), "deconv3_0.bias": (128,),
    "deconv3_1.weight": (128, 128, 3, 3), "deconv3_1.bias": (128,),
    "deconv2.weight": (128, 64, 4, 4), "deconv2.bias": (64,),
    "deconv1.weight": (64, 32, 4, 4), "deconv1.bias": (32,),
    "deconv0.weight": (32, 3, 4, 4), "deconv0.bias": (3,),
}


def test_deepsim_loads_the_published_key_names_and_shapes(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"G." + k: torch.randn(s, generator=g) * 0.01 for k, s in PUBLISHED_FC6.items()}
    path = tmp_path / "fc6.pt"
    torch.save(state, path)
    gen = load_generator_state(DeePSiMFc6(), path)
    assert torch.equal(gen.defc7.weight, state["G.defc7.weight"])
    with torch.no_grad():
        raw = gen.raw(torch.zeros(1, 4096))
        img = gen(torch.zeros(1, 4096))
    assert raw.shape == (1, 3, 256, 256) and img.shape == (1, 3, 228, 228)
    # raw output is BGR minus the mean: the image is its centre, flipped to RGB, plus the mean, over 255
    ref = ((raw + torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)).flip(1) / 255)[:, :, 14:-14, 14:-14]
    assert torch.allclose(img, ref.clamp(0, 1))
    bad = dict(state)
    bad.pop("G.deconv0.bias")
    bad["G.deconv1.weight"] = torch.zeros(64, 16, 4, 4)
    bad["G.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_generator_state(DeePSiMFc6(), bad)
    assert "deconv0.bias" in str(err.value) and "deconv1.weight" in str(err.value) and "extra" in str(err.value)


def small_classifier() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    net.invviz_preprocessing = Preprocessing(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 32, 32))
    return net.eval()


def small_generator() -> CompactGenerator:
    torch.manual_seed(1)
    return CompactGenerator(code_dim=16, size=32, width=8).eval()


def test_one_dgn_am_step_raises_the_objective_and_respects_bounds():
    net, gen = small_classifier(), small_generator()
    gen.set_code_bounds(torch.full((16,), 2.0))
    res = dgn_am(net, gen, class_logit(3), steps=2, lr=0.5, lr_end=0.5, chains=3, monitor_class=3)
    assert res.images.shape == (3, 3, 32, 32) and res.codes.shape == (3, 16)
    assert (res.activation[1] > res.activation[0]).all()  # the value after one step beats the start
    assert float(res.codes.min()) >= 0 and float(res.codes.max()) <= 2.0 * 0.99 + 1e-6
    assert res.probability.shape == (2, 3) and hooks_on(net) == 0 and hooks_on(gen) == 0
    assert all(p.requires_grad for p in gen.parameters()) and not gen.training
    again = dgn_am(net, gen, class_logit(3), steps=2, lr=0.5, chains=3)
    assert torch.equal(again.codes, dgn_am(net, gen, class_logit(3), steps=2, lr=0.5, chains=3).codes)  # seeds
    hidden = dgn_am(net, gen, channel("2", 1), steps=3, lr=0.5, lr_end=0.5)
    assert float(hidden.activation[-1, 0]) > float(hidden.activation[0, 0])
    with pytest.raises(ParameterizationError):
        dgn_am(net, gen, class_logit(3), init=torch.zeros(1, 7))
    with pytest.raises(ObjectiveError):
        dgn_am(net, gen, class_logit(3), lr=-1.0)


def test_ppgn_with_exact_prior_and_no_class_term_moves_codes_to_the_reconstruction():
    net, gen = small_classifier(), small_generator()
    target = torch.rand(16) + 0.5

    def prior(h):  # an exact prior whose reconstruction is one fixed code
        return target.expand_as(h)

    h0 = torch.rand(2, 16)
    gap = (target - h0).abs().mean(dim=1, keepdim=True)  # > 0.3 for these draws
    # the authors' step: lr * d / mean|d| with d = eps1 (R(h) - h): straight toward R(h), lr per unit on average
    res = ppgn_h(net, gen, prior, 1, settings=PPGNSettings(eps1=0.5, eps2=0.0, eps3=0.0, lr=0.1), steps=1, init=h0,
                 chains=2)
    assert torch.allclose(res.codes, h0 + 0.1 * (target - h0) / gap, atol=1e-6)
    res = ppgn_h(net, gen, prior, 1, settings=PPGNSettings(eps1=0.5, eps2=0.0, eps3=0.0, lr=0.1), steps=3, init=h0,
                 chains=2)
    assert torch.allclose((res.codes - target).abs().mean(dim=1, keepdim=True), gap - 0.3, atol=1e-5)
    assert torch.allclose(torch.nn.functional.normalize(res.codes - target, dim=1),
                          torch.nn.functional.normalize(h0 - target, dim=1), atol=1e-5)
    exact = ppgn_h(net, gen, prior, 1, settings=PPGNSettings(eps1=1e-5, lr=0.5, gradient="exact"), steps=3, chains=2)
    assert exact.probability.shape == (3, 2) and exact.kept.shape == (2,)
    with pytest.raises(UnitIndexError):
        ppgn_h(net, gen, prior, 9, steps=1)
    with pytest.raises(ObjectiveError):
        ppgn_h(net, gen, prior, 1, save_every=0)
    with pytest.raises(ObjectiveError):
        ppgn_h(net, gen, prior, 1, settings=PPGNSettings(eps1=float("nan")))
    with pytest.raises(ObjectiveError):
        ppgn_h(net, gen, prior, 1, settings=PPGNSettings(gradient="sideways"))


def test_ppgn_keeps_the_samples_along_the_chain_that_pass_the_threshold():
    net, gen = small_classifier(), small_generator()

    def prior(h):
        return 0.5 * h

    run = dict(settings=PPGNSettings(eps1=0.1, eps3=0.0, lr=0.5), chains=2, seed=3)
    every = ppgn_h(net, gen, prior, 1, steps=5, save_every=2, threshold=0.0, **run)
    assert every.sample_steps.tolist() == [2, 2, 4, 4] and every.sample_chains.tolist() == [0, 1, 0, 1]
    for k in (2, 4):  # a sample at step k is the last image of the same chain run for k steps
        shorter = ppgn_h(net, gen, prior, 1, steps=k, **run)
        assert torch.allclose(every.samples[every.sample_steps == k], shorter.images, atol=1e-6)
    seen = every.probability[2:5:2]
    mid = float(seen.min() + seen.max()) / 2  # between the four saved probabilities
    some = ppgn_h(net, gen, prior, 1, steps=5, save_every=2, threshold=mid, **run)
    expect = [(k, c) for k in (2, 4) for c in (0, 1) if float(every.probability[k, c]) >= mid]
    assert list(zip(some.sample_steps.tolist(), some.sample_chains.tolist())) == expect and 0 < len(expect) < 4
    none = ppgn_h(net, gen, prior, 1, steps=5, save_every=2, threshold=1.01, **run)
    assert none.samples.shape == (0, *every.images.shape[1:])


def test_generator_training_code_stats_and_dae():
    net = small_classifier()
    enc = functools.partial(Probe(net, "3").latent, pool=True)
    comp = functools.partial(Probe(net, "1").latent, pool=True)
    gen = CompactGenerator(code_dim=8, size=32, width=8).eval()
    images = torch.rand(16, 3, 32, 32)
    loader = torch.utils.data.DataLoader(images, batch_size=8, shuffle=True, generator=torch.Generator())
    hist = train_generator(gen, enc, comp, loader, schedule=TrainSchedule(max_steps=12), lr=2e-3, progress=False)
    assert hist[-1]["pixel"] < hist[0]["pixel"] and hooks_on(net) == 0 and not gen.training  # the mode it had
    gen.train()
    train_generator(gen, enc, comp, loader, schedule=TrainSchedule(max_steps=1), lr=2e-3, progress=False)
    assert gen.training and all(m.training for m in gen.modules())
    stats = code_statistics(enc, loader)
    assert stats["upper"].shape == (8,) and (stats["upper"] > 0).all()
    gen.set_code_bounds(stats["upper"])
    dae, dh = train_code_dae(stats["codes"], schedule=TrainSchedule(epochs=30), batch_size=8, progress=False)
    assert dh[-1]["loss"] < dh[0]["loss"] and isinstance(dae, CodeDAE)
    joint = JointPrior(enc, gen)
    assert joint(stats["codes"][:2]).shape == (2, 8)
    with pytest.raises(ObjectiveError):
        train_code_dae(torch.zeros(1, 8))


def test_ppgn_default_class_term_is_the_authors_one_minus_p_times_the_logit_gradient():
    """With a prior term in the step, the (1 - p) factor changes the normalized update: a hand-computed step with the
    authors' term matches, and the step with the plain logit gradient does not."""
    from invviz.models import Probe

    net, gen = small_classifier(), small_generator()
    h0 = torch.rand(2, 16) + 0.1
    h = h0.clone().requires_grad_(True)
    with Probe(net, [""]) as probe:
        logits = probe(gen(h))[""].flatten(1)
    p = torch.softmax(logits, 1)[:, 2].detach()
    g_logit = torch.autograd.grad(logits[:, 2].sum(), h)[0]
    eps1 = float(g_logit.abs().mean() / h0.abs().mean())  # the prior and class terms of equal size
    res = ppgn_h(net, gen, lambda h: torch.zeros_like(h), 2, settings=PPGNSettings(eps1=eps1, eps3=0.0, lr=0.1),
                 steps=1, init=h0, chains=2)

    def step(g):
        d = eps1 * (0 - h0) + g
        return (h0 + 0.1 * d / d.abs().mean(1, keepdim=True)).clamp(0, 30)

    assert torch.allclose(res.codes, step((1 - p)[:, None] * g_logit), atol=1e-5)
    assert not torch.allclose(res.codes, step(g_logit), atol=1e-4)


def test_ppgn_reset_every_restarts_the_chains():
    """With a reset after every step the chains forget where they started; without, they do not."""
    net, gen = small_classifier(), small_generator()
    a, b = torch.rand(2, 16), torch.rand(2, 16) + 1.0
    run = dict(settings=PPGNSettings(eps1=1e-3, lr=0.5), steps=3, chains=2, seed=5)
    reset_a = ppgn_h(net, gen, lambda h: h, 1, init=a, reset_every=1, **run).codes
    reset_b = ppgn_h(net, gen, lambda h: h, 1, init=b, reset_every=1, **run).codes
    plain_a = ppgn_h(net, gen, lambda h: h, 1, init=a, **run).codes
    plain_b = ppgn_h(net, gen, lambda h: h, 1, init=b, **run).codes
    assert torch.equal(reset_a, reset_b) and not torch.allclose(plain_a, plain_b)
