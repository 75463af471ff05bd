import math

import pytest
import torch
from conftest import flags_of, hooks_on
from torch import nn

import invviz
from invviz.align import (
    VFAGAN,
    FashionEncoder,
    FeatureAligned,
    LocalFA,
    ToyNet,
    align,
    clamp_weights_,
    decode,
    fa_loss,
    interpolate_latents,
    kl_divergence,
    orthogonal_init_,
    prior_latent,
    toy_recover,
    train_aligned,
    vfa_loss,
)
from invviz.errors import CheckpointError, ImageSizeError, NonFiniteError, ObjectiveError
from invviz.models import Preprocessing
from invviz.training import TrainSchedule, fit


def test_one_step_from_zero_on_a_linear_layer_is_w_transpose():
    lin = nn.Linear(12, 5).double()
    z = torch.randn(3, 5, dtype=torch.float64)
    r = align(lin, z, (3, 12), steps=1, tau=1.0)
    assert torch.allclose(r, (z - lin.bias) @ lin.weight, atol=1e-12)
    r2 = align(lin, z, (3, 12), steps=1, tau=0.5)
    assert torch.allclose(r2, 0.5 * (z - lin.bias) @ lin.weight, atol=1e-12)
    for bad in ({"steps": 0}, {"tau": 0.0}, {"tau": -1.0}):
        with pytest.raises(ObjectiveError):
            align(lin, z, (3, 12), **bad)
    with pytest.raises(ObjectiveError, match="latent"):
        align(lin, torch.zeros(3, 4, dtype=torch.float64), (3, 12))


def test_local_reconstruction_of_an_asinh_layer_is_exact():
    torch.manual_seed(0)
    net = LocalFA((6, 6)).double()
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
        net.layers[0].weight.copy_(q)  # orthogonal: one step from zero is the exact inverse of the linear part
    x = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(net.decode(net(x)), x, atol=1e-10)
    assert torch.allclose(torch.sinh(torch.asinh(x)), x, atol=1e-12)
    # the local losses touch only their own layer
    deep = LocalFA((8, 6, 4))
    losses = deep.local_losses(torch.randn(5, 8))
    grads = torch.autograd.grad(losses[1], [deep.layers[0].weight, deep.layers[1].weight], allow_unused=True)
    assert grads[0] is None and grads[1] is not None


def test_fa_training_reduces_the_reconstruction_loss():
    torch.manual_seed(0)
    enc = orthogonal_init_(FashionEncoder(latent=16, width=4))
    x = torch.rand(8, 1, 28, 28)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    first = None
    for _ in range(20):
        loss, z, r_hat = fa_loss(enc, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        clamp_weights_(enc)
        first = float(loss.detach()) if first is None else first
    assert float(fa_loss(enc, x)[0]) < 0.7 * first
    assert all(float(m.weight.abs().max()) <= math.sqrt(2) + 1e-6 for m in enc.modules() if isinstance(m, nn.Linear))
    assert decode(enc, z, tuple(x.shape)).shape == x.shape


def test_toy_recovery_is_one_gradient_step():
    net = ToyNet(hidden=16).double()
    x = torch.rand(5, 1, dtype=torch.float64)
    r = toy_recover(net, x)
    r0 = torch.zeros_like(x, requires_grad=True)
    fx, lx = net(x).unbind(1)
    fr, lr_ = net(r0).unbind(1)
    loss = ((lx - lr_) ** 2 + 0.01 * (fx - fr) ** 2).sum()
    (g,) = torch.autograd.grad(loss, r0)
    assert torch.allclose(r, -g, atol=1e-12)


def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    net.invviz_preprocessing = Preprocessing(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 12, 12))
    return net


def test_wrapper_leaves_the_user_model_alone_and_resumes_identically(tmp_path):
    net = tiny_classifier()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = flags_of(net)
    data = torch.rand(24, 3, 12, 12)
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator())

    def run(ckpt, steps, resume=True):
        torch.manual_seed(1)
        w = FeatureAligned(net, "3")
        return w, train_aligned(w, loader, schedule=TrainSchedule(max_steps=steps, checkpoint_every=2),
                                lr=1e-3, checkpoint=ckpt,
                                resume=resume, progress=False)

    full_ckpt, part_ckpt = tmp_path / "full.pt", tmp_path / "part.pt"
    _, full = run(full_ckpt, 5)
    _, part = run(part_ckpt, 3)
    _, rest = run(part_ckpt, 5)  # resumes at step 3
    assert len(rest) == 5 and [h["loss"] for h in rest[3:]] == pytest.approx([h["loss"] for h in full[3:]], rel=1e-6)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items()) and flags_of(net) == flags
    assert hooks_on(net) == 0
    w = FeatureAligned(net, "3").load(full_ckpt)
    assert not torch.equal(w.model[0].weight, net[0].weight)
    (tmp_path / "bad.pt").write_bytes(full_ckpt.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated"):
        FeatureAligned(net, "3").load(tmp_path / "bad.pt")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    lin = nn.Linear(2, 1)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    ckpt = tmp_path / "c.pt"

    def step(batch, i):
        loss = lin(batch).sum() * (float("nan") if i == 3 else 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss}

    with pytest.raises(NonFiniteError, match="step 2"):
        fit(step, [torch.ones(1, 2)] * 10, schedule=TrainSchedule(checkpoint_every=2),
            modules={"lin": lin}, optimizers={"sgd": opt}, checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["modules"]["lin"].values())


def test_invert_recovers_an_image_through_an_orthogonal_linear_network():
    torch.manual_seed(0)
    d = 3 * 12 * 12
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, d, bias=False))
    nn.init.orthogonal_(net[1].weight)
    net.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 12, 12))
    img = torch.rand(3, 12, 12) * 0.8 + 0.1
    res = invviz.invert(net, img, layer="1", steps=300, tv_weight=0.0, lr=0.1, param="pixel", transforms="none")
    assert float(res.psnr) > 35 and res.images.shape == (1, 3, 12, 12) and hooks_on(net) == 0
    from_latent = invviz.invert(net, latent=res.latent[0], layer="1", steps=300, tv_weight=0.0, lr=0.1,
                                param="pixel", transforms="none")
    assert from_latent.psnr is None and float(invviz.metrics.psnr(from_latent.images[0], img)) > 35
    with pytest.raises(ObjectiveError, match="values per image"):
        invviz.invert(net, latent=torch.zeros(7), layer="1")
    with pytest.raises(ImageSizeError):
        invviz.invert(net, img * 3, layer="1")
    with pytest.raises(ObjectiveError, match="exactly one"):
        invviz.invert(net, layer="1")


def test_invert_a_feature_aligned_model_decodes_its_latent():
    w = FeatureAligned(tiny_classifier(), "3", steps=2)
    img = torch.rand(3, 12, 12)
    res = invviz.invert(w, img)
    assert res.images.shape == (1, 3, 12, 12) and res.latent.shape == (1, 8)
    again = invviz.invert(w, latent=res.latent)
    assert torch.allclose(again.images, res.images)
    with pytest.raises(ObjectiveError):
        invviz.invert(w, latent=torch.zeros(1, 5))


def test_kl_divergence_matches_torch_distributions():
    mu, logvar = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), ref, atol=1e-12)
    assert float(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0


def test_prior_latents_conditioning_and_interpolation():
    enc = FashionEncoder(latent=8, variational=True, classes=3, width=4)
    z = prior_latent(enc, 4, classes=[0, 2, 1, 2], class_scale=5.0, rng=torch.Generator().manual_seed(0))
    assert z.shape == (4, 11) and z[:, 8:].argmax(1).tolist() == [0, 2, 1, 2] and float(z[:, 8:].max()) == 5.0
    with pytest.raises(ObjectiveError, match="class indices"):
        prior_latent(enc, 2, classes=[0, 3])
    with pytest.raises(ObjectiveError, match="class head"):
        prior_latent(FashionEncoder(latent=8, variational=True, width=4), 2, classes=[0, 1])
    path = interpolate_latents(z[0], z[1], 5)
    assert torch.equal(path[0], z[0]) and torch.allclose(path[-1], z[1]) and path.shape == (5, 11)
    with pytest.raises(ObjectiveError):
        vfa_loss(FashionEncoder(latent=8, width=4), torch.rand(2, 1, 28, 28))  # no variational heads


def test_vfa_gan_each_loss_updates_only_its_own_network():
    torch.manual_seed(0)
    enc = orthogonal_init_(FashionEncoder(latent=8, variational=True, classes=3, width=4))
    gan = VFAGAN(enc)
    x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 1])
    probe = torch.rand(2, 1, 28, 28)
    assert torch.allclose(gan.refiner(probe), probe.clamp(1e-4, 1 - 1e-4), atol=1e-6)  # identity at start
    nets = {"encoder": gan.encoder, "refiner": gan.refiner, "discriminator": gan.discriminator}
    zero = {k: torch.optim.SGD(v.parameters(), lr=0.0) for k, v in nets.items()}
    torch.manual_seed(1)
    gan.train_step(x, zero, labels, clamp=None)
    got = {k: [p.grad.clone() for p in v.parameters()] for k, v in nets.items()}
    torch.manual_seed(1)  # the same noise and beta: each network's gradient is that of its own loss alone
    out = gan.losses(x, labels)
    for name, loss in (("encoder", "encoder"), ("refiner", "generator"), ("discriminator", "discriminator")):
        ref = torch.autograd.grad(out[loss], list(nets[name].parameters()), retain_graph=True, allow_unused=True)
        for g, r in zip(got[name], ref):
            assert torch.allclose(g, torch.zeros_like(g) if r is None else r, atol=1e-6, rtol=1e-4)
    opts = {k: torch.optim.Adam(v.parameters(), lr=1e-3, betas=(0.5, 0.999)) for k, v in nets.items()}
    first = [float(gan.train_step(x, opts, labels)["recon"]) for _ in range(8)]
    assert first[-1] < first[0]
    samples = gan.sample(3, (1, 28, 28), classes=[0, 1, 2], rng=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 1, 28, 28) and 0 < float(samples.min()) and float(samples.max()) < 1
    assert gan.reconstruct(x).shape == x.shape
    with pytest.raises(ObjectiveError, match="lambda"):
        VFAGAN(enc, lam=-1.0)


def test_each_alignment_step_uses_its_own_step_size():
    """A hand-computed two-step decode on a linear encoder with different step sizes (a loop that used the first
    step size for every step fails)."""
    torch.manual_seed(0)
    lin = nn.Linear(10, 4).double()
    w, b = lin.weight.detach(), lin.bias.detach()
    z = torch.randn(3, 4, dtype=torch.float64)
    r0 = torch.randn(3, 10, dtype=torch.float64)
    taus = torch.tensor([0.3, 0.05], dtype=torch.float64)
    r1 = r0 - 0.3 * (r0 @ w.T + b - z) @ w
    r2 = r1 - 0.05 * (r1 @ w.T + b - z) @ w
    got = align(lin, z, (3, 10), steps=2, tau=taus, r0=r0)
    assert torch.allclose(got, r2, atol=1e-12)
    assert not torch.allclose(align(lin, z, (3, 10), steps=2, tau=0.3, r0=r0), r2, atol=1e-6)
    with pytest.raises(ObjectiveError):
        align(lin, z, (3, 10), steps=2, tau=torch.tensor([0.3, -1.0]), r0=r0)


def test_the_wrappers_decoder_is_the_one_loop_with_its_learned_step_sizes():
    torch.manual_seed(0)
    w = FeatureAligned(tiny_classifier(), "3", steps=2)
    with torch.no_grad():
        w.log_tau.copy_(torch.tensor([math.log(0.5), math.log(0.02)]))
    x = torch.rand(2, 3, 12, 12)
    z = w.encode(x)
    with w.encoder() as enc:
        want = torch.sigmoid(align(enc, z, (2, 3, 12, 12), steps=2, tau=torch.tensor([0.5, 0.02]),
                                   r0=w.start(2).detach(), link=torch.sigmoid))
    assert torch.allclose(w.decode(z), want, atol=1e-6)


def test_the_reconstruction_loss_is_per_pixel():
    """Scale-free: the same value for a batch and for copies of it, and at two image sizes for the same per-pixel
    error, so the other terms' weights keep their meaning."""
    torch.manual_seed(0)
    w = FeatureAligned(tiny_classifier(), "3", steps=1)
    x = torch.rand(2, 3, 12, 12)
    a = w.losses(x)["recon"]
    b = w.losses(torch.cat([x, x]))["recon"]
    assert torch.allclose(a, b, rtol=1e-5)
    with torch.no_grad():
        w.log_tau.fill_(math.log(1e-12))  # the decoder stays at r_0: the loss is the start image's error
    flat = torch.full((1, 3, 12, 12), 0.8)
    start = torch.sigmoid(w.r0.detach())
    assert torch.allclose(w.losses(flat)["recon"], ((flat - start) ** 2).mean(), rtol=1e-4)
    big = FeatureAligned(tiny_classifier(), "3", steps=1, size=24)
    with torch.no_grad():
        big.log_tau.fill_(math.log(1e-12))
        big.r0.fill_(float(w.r0.mean()))
        w.r0.fill_(float(w.r0.mean()))
    assert torch.allclose(big.losses(torch.full((1, 3, 24, 24), 0.8))["recon"], w.losses(flat)["recon"], rtol=1e-4)


def test_invert_with_its_defaults_inverts_an_orthogonal_map():
    """The shifts and the prior that help on natural features stop before the end: an exactly invertible map comes
    back at >= 30 dB with the defaults, and the result says the features matched."""
    torch.manual_seed(0)
    d = 3 * 16 * 16
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, d, bias=False))
    nn.init.orthogonal_(net[1].weight)
    net.invviz_preprocessing = Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size=(3, 16, 16))
    img = invviz.data.load_photo("chelsea", 16)
    res = invviz.invert(net, img, layer="1")
    assert float(res.psnr) >= 30 and float(res.feature_error) < 0.05, res
    assert "feature_error" in repr(res)
