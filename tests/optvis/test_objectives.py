import numpy as np
import pytest
import torch
from torch import nn

from invviz.errors import ObjectiveError, UnitIndexError
from invviz.models import Capture
from invviz.optvis import (
    IMAGE,
    as_objective,
    channel,
    class_logit,
    custom,
    deepdream,
    direction,
    diversity,
    neuron,
    total_variation,
    units,
)


def hand_conv() -> nn.Module:
    """1x1 conv with known weights: channel k of the output is (k+1) * (sum of input channels) + k."""
    conv = nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1, 5, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 1, 1))
        conv.bias.copy_(torch.arange(4, dtype=torch.float32))
    return nn.Sequential(conv, nn.ReLU())


def feats_of(x: torch.Tensor) -> dict:
    with Capture(hand_conv(), ["0"]) as cap:
        return cap.run(x)


def test_exact_values_on_hand_built_conv():
    x = torch.zeros(2, 3, 3, 5)
    x[0, :, 1, 4] = 1.0  # element 0: one bright pixel at row 1, column 4
    f = feats_of(x)
    s = x.sum(1)  # (B, H, W)
    for k in range(4):
        assert torch.allclose(channel("0", k)(f), ((k + 1) * s + k).mean(dim=(1, 2)))
    # neuron: x is the column, y the row; the centre of a 3x5 grid is row 1, column 2
    assert neuron("0", 2, x=4, y=1)(f).tolist() == [3 * 3 + 2, 2.0]
    assert neuron("0", 2)(f).tolist() == [2.0, 2.0]
    assert torch.allclose(deepdream("0")(f), (f["0"] ** 2).mean(dim=(1, 2, 3)))
    with pytest.raises(UnitIndexError, match="4 channels"):
        channel("0", 4)(f)
    with pytest.raises(UnitIndexError, match="outside"):
        neuron("0", 0, x=5, y=0)(f)


def test_units_per_batch_element_and_batch_selection():
    f = {"l": torch.randn(3, 5, 2, 2)}
    vals = channel("l", [4, 0, 2])(f)
    assert torch.allclose(vals, torch.stack([f["l"][0, 4].mean(), f["l"][1, 0].mean(), f["l"][2, 2].mean()]))
    only = channel("l", 1, batch=2)(f)
    assert only[:2].tolist() == [0.0, 0.0] and torch.isclose(only[2], f["l"][2, 1].mean())
    with pytest.raises(ObjectiveError, match="batch=2"):
        channel("l", [0, 1])(f)
    group = units("l", {1: 2.0, 3: -1.0})(f)
    assert torch.allclose(group, 2 * f["l"][:, 1].mean((1, 2)) - f["l"][:, 3].mean((1, 2)))


def lucid_dot_cossim(x: np.ndarray, y: np.ndarray, p: float) -> float:
    """NumPy transcription of Lucid's _dot_cossim on NHWC x and a vector y (mean over positions)."""
    eps = 1e-4
    dot = (x * y).sum(-1)
    if p == 0:
        return float(dot.mean())
    cos = dot / (eps + np.sqrt((x * x).sum(-1))) / (eps + np.sqrt((y * y).sum(-1)))
    return float((dot * np.maximum(0.1, cos) ** p).mean())


@pytest.mark.parametrize("p", [0.0, 1.0, 2.5])
def test_direction_matches_lucid(p):
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 6, 3, 4)).astype(np.float64)
    vec = rng.standard_normal(6)
    got = direction("l", torch.tensor(vec), cossim_pow=p)({"l": torch.tensor(f)})
    for b in range(2):
        ref = lucid_dot_cossim(f[b].transpose(1, 2, 0), vec, p)
        assert abs(float(got[b]) - ref) < 1e-5 * max(1.0, abs(ref))
    with pytest.raises(ObjectiveError):
        direction("l", vec, cossim_pow=-1)


def test_diversity_matches_lucid_and_algebra():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((3, 4, 2, 2))
    flat = f.reshape(3, 4, -1).transpose(0, 2, 1)  # Lucid: (B, HW, C)
    grams = np.einsum("bnc,bnd->bcd", flat, flat)
    grams = grams / np.linalg.norm(grams.reshape(3, -1), axis=1)[:, None, None]
    lucid = sum(sum((grams[i] * grams[j]).sum() for j in range(3) if j != i) for i in range(3)) / 3
    got = diversity("l")({"l": torch.tensor(f)})
    assert abs(float(got.sum()) + lucid) < 1e-9  # our sign: maximize diversity

    feats = {"l": torch.tensor(f), IMAGE: torch.rand(3, 3, 4, 4)}
    a, b = channel("l", 1), deepdream("l")
    combo = 2 * a - b / 4 + (-a) + total_variation() * 0.5
    expect = 2 * a(feats) - b(feats) / 4 - a(feats) + 0.5 * total_variation()(feats)
    assert torch.allclose(combo(feats), expect)
    assert combo.layers == ("l", IMAGE)


def test_sum_of_thousands_of_terms_has_no_recursion_limit():
    f = {"l": torch.randn(1, 8, 2, 2)}
    obj = sum(channel("l", i % 8) for i in range(5000))
    assert torch.allclose(obj(f), 625 * f["l"].mean(dim=(2, 3)).sum(dim=1), rtol=1e-4)


def test_as_objective_and_custom():
    f = {"l": torch.randn(2, 3, 2, 2), "": torch.randn(2, 10, 1, 1)}
    assert torch.equal(as_objective(2, "l")(f), channel("l", 2)(f))
    assert torch.equal(as_objective([0, 1], "l")(f), channel("l", [0, 1])(f))
    assert torch.allclose(as_objective(lambda t: t[:, 0].amax(dim=(1, 2)), "l")(f), f["l"][:, 0].amax(dim=(1, 2)))
    assert torch.equal(class_logit(3)(f), f[""][:, 3, 0, 0])
    spread = custom("l", lambda t: t.sum())(f)
    assert spread.shape == (2,) and torch.isclose(spread.sum(), f["l"].sum())
    for bad in ["channel 3", 2.5, None, True]:
        with pytest.raises(ObjectiveError, match="channel index"):
            as_objective(bad, "l")
    with pytest.raises(TypeError):  # ObjectiveError is a TypeError too
        as_objective({}, "l")


@pytest.mark.parametrize("agg", ["mean", "maxpool_mean", "pick"])
def test_direction_on_aggregated_response_is_seed_objective(agg):
    from invviz.optvis import aggregate

    f = torch.rand(2, 6, 5, 4, dtype=torch.float64)
    vec = torch.rand(6, dtype=torch.float64)
    v = aggregate(f, agg)  # (B, C)
    if agg == "mean":
        assert torch.allclose(v, f.mean(dim=(2, 3)))
    if agg == "maxpool_mean":
        ref = torch.stack([f[:, :, i:i + 3, j:j + 3].amax(dim=(2, 3)) for i in range(3) for j in range(2)]).mean(0)
        assert torch.allclose(v, ref)
    if agg == "pick":
        assert torch.equal(v, f[:, :, 2, 2])
    cos = (v @ vec) / (v.norm(dim=1) * vec.norm())
    got = direction("l", vec, cossim_pow=2.0, aggregation=agg)({"l": f})
    assert torch.allclose(got, (v @ vec) * cos ** 2)


def test_aggregated_direction_is_not_even_in_the_direction():
    """With p = 1, <v, d> cos(v, d) = <v, d>^2 / |v| would reward anti-alignment; the seed objective as invviz
    implements it is the dot product where cos <= 0, so -d scores below d and the two branches meet at 0."""
    f = torch.rand(1, 4, 3, 3, dtype=torch.float64) + 0.1
    vec = torch.rand(4, dtype=torch.float64)
    up = direction("l", vec, cossim_pow=1.0, aggregation="mean")({"l": f})
    down = direction("l", -vec, cossim_pow=1.0, aggregation="mean")({"l": f})
    v = f.mean(dim=(2, 3))[0]
    assert float(up) > 0 > float(down) and torch.allclose(down, -(v @ vec).reshape(1))
    ortho = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    g = torch.zeros(1, 4, 1, 1, dtype=torch.float64)
    g[0, :2, 0, 0] = 1.0
    assert float(direction("l", ortho, cossim_pow=1.0, aggregation="mean")({"l": g})) == 0.0


def test_direction_with_one_vector_per_batch_element():
    f = torch.rand(3, 5, 4, 4, dtype=torch.float64)
    vecs = torch.rand(3, 5, dtype=torch.float64)
    both = direction("l", vecs, cossim_pow=1.0, aggregation="maxpool_mean")({"l": f})
    single = torch.stack([direction("l", vecs[i], cossim_pow=1.0, aggregation="maxpool_mean")({"l": f})[i]
                          for i in range(3)])
    assert torch.allclose(both, single)
    with pytest.raises(ObjectiveError, match="one per batch element"):
        direction("l", vecs[:2], aggregation="mean")({"l": f})
    picked = direction("l", vecs[0], aggregation="pick", position=(1, 2))({"l": f})
    assert torch.allclose(picked, f[:, :, 1, 2] @ vecs[0])
