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
# # Concepts of a layer over a dataset
#
# A unit of a network rarely means one thing; directions in a layer's activation space often do. `invviz.concepts`
# factors a layer's activations over a dataset into `k` directions (NMF as in CRAFT and Lucid's building blocks, a
# TopK sparse autoencoder as in Anthropic's dictionary learning, or PCA as the baseline), then shows each concept by
# what it looks like to the network (its rendering), where it is in the data (its top examples, with the concept's
# map over each), how much of the activation it carries, and which classes rely on it.
#
# Here: the embedded EfficientNet-Lite0 over augmented crops of the photos that ship inside scikit-image, scikit-learn
# and matplotlib. `INVVIZ_SMALL=1` (the test suite) uses few crops and few render steps.

# %%
import invviz
import torch
import matplotlib.pyplot as plt
from invviz.data import PhotoCrops, split_photos
from _common import DEVICE, SMALL, pick

model = invviz.load_model("tf_efficientnet_lite0").to(DEVICE)
probe = invviz.Probe(model)  # wrap once: every verb takes the probe (its preprocessing and layouts)
LAYER = "blocks.4.2.bn2"  # after a ReLU6: non-negative, so NMF applies
CROPS, SIZE, STEPS, K = pick((48, 128, 24, 6), (1024, 224, 384, 16))
train_names, held_names = split_photos(2)  # two whole photos are kept out of learning
train = PhotoCrops(SIZE, names=train_names, length=CROPS, seed=0)
held = PhotoCrops(SIZE, names=held_names, length=max(8, CROPS // 4), seed=1)
print(f"{len(train)} training crops of {train_names}; held-out photos {held_names}")

# %% [markdown]
# ## Learning the concepts
# One streaming pass collects a uniform sample of the layer's activation vectors (16 positions per image here; the
# sample is bounded by `max_vectors`, so memory does not grow with the dataset), NMF learns `k` directions, and a
# second pass finds each concept's strongest examples and, for each class the model predicts on the data, the
# concepts that class relies on (gradient x concept activation).

# %%
nmf = invviz.concepts(probe, LAYER, train, K, method="nmf", size=SIZE, held_out=0.0)
print(nmf)
print("share of the activation per concept:", [round(float(v), 3) for v in nmf.importance])
print("on the held-out photos:", nmf.evaluate(probe, held))

# %% [markdown]
# ## The baselines beside it
# The same pass with a TopK sparse autoencoder (any sign of activation; `top_k` concepts active per vector) and PCA.
# R^2 is measured on crops of the held-out photos: how much of their activations the `k` directions reconstruct.
# PCA reconstructs best for its `k` (that is what it optimizes) but its directions mix concepts; NMF and the SAE trade
# some reconstruction for parts that are each present or absent.

# %%
for method in ("sae", "pca"):
    other = invviz.concepts(probe, LAYER, train, K, method=method, size=SIZE, held_out=0.0, classes=False,
                            sae_steps=pick(200, 3000))
    print(f"{method}: {other.evaluate(probe, held)}")

# %% [markdown]
# ## Each concept rendered, with its evidence
# `render` visualizes every concept direction in one batch (the `direction` objective, the atlas's fast recipe);
# `figure` lays out, one row per concept by importance, its rendering and its top examples with the concept's map.

# %%
nmf.render(probe, steps=STEPS, size=pick(64, 128))
fig = nmf.figure(n=4)
plt.show()

# %% [markdown]
# ## Which classes use which concept
# For every class predicted on the data: its images' mean contribution of each concept to that class's logit.

# %%
for cls in nmf.class_ids[:5].tolist():
    print(f"class {cls}: concepts {nmf.concepts_of(cls, 3)}")
best = int(nmf.importance.argmax())
print(f"concept {best} is used most by classes {nmf.top_classes(best, 3)}")

# %% [markdown]
# ## Keep them, and browse them
# `save` writes the result (tensors and plain values only; `Concepts.load` reads it without executing code), and
# `invviz.atlas(..., concepts=result)` adds a concepts page to an atlas: the renderings, the examples with their maps,
# the importance and the classes, searchable by number. From the shell:
# `invviz concepts tf_efficientnet_lite0 --layer blocks.4.2.bn2 --data photos --k 16 --out concepts_site`.

# %%
import tempfile, os

folder = tempfile.mkdtemp()
path = nmf.save(os.path.join(folder, "concepts.pt"))
site = invviz.atlas(probe, LAYER, folder, units={LAYER: []}, concepts=invviz.Concepts.load(path, probe),
                    data=None, progress=False)
print("wrote", site.html)
