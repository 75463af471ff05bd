# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Feature alignment: a network that decodes its own latents, and keeps its predictions
#
# Feature alignment (Farias & Maziero 2023) trains a network so that a few gradient steps on a start image, aligning
# its latent with a target latent, give back the image: the network is its own decoder. `invviz.align.FeatureAligned`
# brings this to *your* pretrained network: it fine-tunes a copy so its latent becomes decodable, while the network
# keeps its predictions — exactly, through a projection onto the head's null space, where the rest of the network is
# an average-pool and a linear layer (the last stage of most classifiers); by distillation elsewhere.
#
# This notebook trains an ordinary Fashion-MNIST classifier (Debian package `dataset-fashion-mnist`), wraps it at its
# last spatial stage and at its pooled features, wraps the embedded ImageNet EfficientNet-Lite0 on crops of photos,
# compares with optimization-based inversion, and ends with the paper's own networks (toy, VFA, VFA-GAN, local FA).
# `INVVIZ_SMALL=1` (the test suite on CPU) uses few steps and small networks.

# %%
import invviz
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from invviz.align import FeatureAligned, train_aligned
from invviz.training import TrainSchedule
from invviz.data import fashion_mnist
from invviz.errors import DatasetNotFoundError
from invviz.models.zoo import FashionResNet
from _common import DEVICE, SMALL, pick

try:
    x_train, y_train = fashion_mnist("train", limit=pick(2048, None))
    x_test, y_test = fashion_mnist("test", limit=pick(512, None))
except DatasetNotFoundError as err:  # apt-get install dataset-fashion-mnist
    print(err)
    x_train = None

# %% [markdown]
# ## 1. An ordinary classifier
# A small ResNet (`invviz.models.zoo.FashionResNet`), cross-entropy, Adam: nothing of feature alignment.
# (`benchmarks/fashion_classifier.py` trains the one the README's figures use: 92% test accuracy.)

# %%
if x_train is not None:
    net = FashionResNet(width=pick(8, 32)).to(DEVICE)
    normalize = invviz.models.Normalize(net.invviz_preprocessing).to(DEVICE)
    opt = torch.optim.Adam(net.parameters(), lr=pick(3e-3, 1e-3))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=128,
                                         shuffle=True)
    for epoch in range(pick(4, 5)):
        for xb, yb in loader:
            net.train()
            loss = F.cross_entropy(net(normalize(xb.to(DEVICE))), yb.to(DEVICE))
            opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    with torch.no_grad():
        original = net(normalize(x_test.to(DEVICE))).argmax(1).cpu()
    print(f"test accuracy {float((original == y_test).float().mean()):.3f}")

# %% [markdown]
# ## 2. Wrap it at its last spatial stage and fine-tune
# `FeatureAligned(net, "layer3")` copies the network (yours is untouched), finds that everything after `layer3` is
# an average-pool and a linear layer, and so keeps the outputs exactly: the fine-tuned latent's component in the
# head's row space is replaced by the original's. `train_aligned` takes any DataLoader of images in [0, 1] (or an
# image folder: `train_aligned(wrapped, "path/to/folder")`), sets the alignment step size by a line search on the
# first batch, and fine-tunes the layers before the latent.

# %%
if x_train is not None:
    wrapped = FeatureAligned(net, "layer3")
    print("predictions kept by:", wrapped.preserve)
    data = torch.utils.data.DataLoader(x_train, batch_size=64, shuffle=True, generator=torch.Generator())
    hist = train_aligned(wrapped, data, schedule=TrainSchedule(max_steps=pick(30, 2800)), lr=1e-3, progress=False)
    rec = invviz.invert(wrapped, x_test[:8].to(DEVICE))
    with torch.no_grad():
        kept = wrapped(x_test.to(DEVICE)).argmax(1).cpu()
    print(rec)
    print(f"top-1 agreement with the original: {float((kept == original).float().mean()):.4f};"
          f" test accuracy {float((kept == y_test).float().mean()):.3f}")
    invviz.plotting.show_images(torch.cat([x_test[:8], rec.images]), ["test image"] * 8 + ["decoded"] * 8);

# %% [markdown]
# The pooled features (`global_pool`, 32 or 128 values) are the hard case: the linear head fixes 10 directions of
# them, and the decodable information has to live in the rest.

# %%
if x_train is not None:
    pooled = FeatureAligned(net, "global_pool")
    train_aligned(pooled, data, schedule=TrainSchedule(max_steps=pick(30, 2800)), lr=1e-3, progress=False)
    rec_pool = invviz.invert(pooled, x_test[:8].to(DEVICE))
    print(rec_pool)
    invviz.plotting.show_images(torch.cat([x_test[:8], rec_pool.images]), ["test image"] * 8 + ["decoded"] * 8);

# %% [markdown]
# ## 3. Optimization-based inversion, for any model
# A network that was never wrapped is inverted by optimization (Mahendran & Vedaldi 2015): the image whose features
# match. Without a layer, `invert` takes the model's stride-8 stage and says so.

# %%
if x_train is not None:
    by_opt = invviz.invert(net, x_test[:8].to(DEVICE), layer="layer2", steps=pick(20, 300))
    print(by_opt)
model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)
photo = invviz.data.load_photo("chelsea", pick(64, 128)).to(DEVICE)
default = invviz.invert(model, photo, steps=pick(20, 300))
print(default)
default.save("invert_chelsea.png")  # the photo above its reconstruction
invviz.plotting.show_images(torch.cat([photo[None].cpu(), default.images]), ["photo", f"from {default.layer}"]);

# %% [markdown]
# ## 4. The ImageNet model on crops of photos
# EfficientNet-Lite0's spatial stages are followed by more blocks, so its predictions are kept by distillation to
# the frozen original (`preserve="distill"`); `benchmarks/fa_wrapper_lite0.py` measures how well.

# %%
from invviz.data import photo_crops
size = pick(64, 128)
names = sorted(invviz.data.photo_paths())
train = photo_crops(pick(64, 2048), size, names=names[:-2], seed=0)
held = photo_crops(4, size, names=names[-2:], seed=1).to(DEVICE)
lite = FeatureAligned(model, "blocks.4", size=size)
print("predictions kept by:", lite.preserve)
crops = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator())
train_aligned(lite, crops, schedule=TrainSchedule(max_steps=pick(3, 600)), lr=1e-4, progress=False)
after = invviz.invert(lite, held)
print(after)
invviz.plotting.show_images(torch.cat([held.cpu(), after.images]), ["held-out crop"] * 4 + ["decoded"] * 4);

# %% [markdown]
# ## 5. The paper's own networks
# The toy (`y = sin(3 pi x)` with one extra latent neuron, recovered by one step from r = 0), the authors' encoder
# with FA, VFA (a variational latent, sampled from `N(0, I)`) and VFA-GAN (a refiner and a least-squares
# discriminator), and local FA (layer-wise training with asinh). `benchmarks/fa_toy.py` and
# `benchmarks/fa_fashion.py` run them in full.

# %%
from invviz.align import (VFAGAN, FashionEncoder, LocalFA, ToyNet, clamp_weights_, decode, fa_loss, orthogonal_init_,
                          toy_recover)
torch.manual_seed(0)
toy = ToyNet(hidden=pick(128, 1024))
opt = torch.optim.Adam(toy.parameters(), lr=1e-3)
for _ in range(pick(40, 1500)):
    xs = torch.rand(256, 1)
    loss = ((toy(xs)[:, :1] - torch.sin(3 * torch.pi * xs)) ** 2).mean() + \
        ((xs - toy_recover(toy, xs, create_graph=True)) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
grid = torch.linspace(0, 1, 501)[:, None]
print("toy: max recovery error", float((toy_recover(toy, grid).detach() - grid).abs().max()))
if x_train is not None:
    enc = orthogonal_init_(FashionEncoder(width=pick(8, 32)))
    gan = VFAGAN(orthogonal_init_(FashionEncoder(variational=True, classes=10, width=pick(8, 32))))
    opt = torch.optim.Adam(enc.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opts = {name: torch.optim.Adam(getattr(gan, name).parameters(), lr=1e-4, betas=(0.5, 0.999))
            for name in ("encoder", "refiner", "discriminator")}
    local = LocalFA((784, 256, 64))
    opt_local = torch.optim.Adam(local.parameters(), lr=1e-3)
    for step in range(pick(4, 1500)):
        idx = torch.randint(0, len(x_train), (128,))
        loss, _, _ = fa_loss(enc, x_train[idx])
        opt.zero_grad(); loss.backward(); opt.step(); clamp_weights_(enc)
        gan.train_step(x_train[idx], opts, y_train[idx])
        local.train_step(x_train[idx], opt_local)  # one layer's graph at a time
    xt = x_test[:8].clamp(0.01, 0.99)
    fa_rec = decode(enc, enc(xt), tuple(xt.shape))
    samples = gan.sample(8, (1, 28, 28), classes=list(range(8)), class_scale=3.0)
    local_rec = local.decode(local(xt)).clamp(0, 1).reshape(xt.shape)
    invviz.plotting.show_images(torch.cat([xt, fa_rec, local_rec, samples]).detach(),
                                ["test"] * 8 + ["FA"] * 8 + ["local FA"] * 8 + ["VFA-GAN sample"] * 8);
