import numpy as np
import pytest
import torch
from torch import nn

import invviz
from invviz.errors import ObjectiveError, UnitIndexError
from invviz.models import Capture, Preprocessing
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


# -- Lucid's other objectives, each against a NumPy transcription of Lucid's TensorFlow definition --------------
def np_blur(x: np.ndarray, w: int) -> np.ndarray:
    """Lucid's `_tf_blur` on NCHW: a w x w kernel (0.5 border, 1 inside), SAME zero padding, over the blur of ones."""
    k = np.full((w, w), 0.5)
    k[1:-1, 1:-1] = 1.0
    r = w // 2

    def conv(t):
        p = np.pad(t, ((0, 0), (0, 0), (r, r), (r, r)))
        out = np.zeros_like(t)
        for dy in range(w):
            for dx in range(w):
                out += k[dy, dx] * p[:, :, dy:dy + t.shape[2], dx:dx + t.shape[3]]
        return out

    return conv(x) / conv(np.ones_like(x))


def test_lucid_penalties_blur_and_boundary_match_numpy():
    from invviz.optvis import IMAGE, blur_input_each_step, l1, l2, penalize_boundary_complexity

    x = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    a = x.numpy()
    feats = {IMAGE: x, "l": x * 2 - 1}
    assert torch.allclose(l1(constant=0.3)(feats), torch.from_numpy(np.abs(a - 0.3).reshape(2, -1).sum(1)))
    assert torch.allclose(l2("l", epsilon=1e-6)(feats),
                          torch.from_numpy(np.sqrt(1e-6 + ((2 * a - 1) ** 2).reshape(2, -1).sum(1))))
    ref_blur = 0.5 * ((a - np_blur(a, 3)) ** 2).reshape(2, -1).sum(1)
    assert torch.allclose(blur_input_each_step()(feats), torch.from_numpy(ref_blur))
    mask = np.ones_like(a)
    mask[:, :, 3:-3, 3:-3] = 0
    diffs = (np_blur(a, 5) - a) ** 2 + 0.8 * (a - 0.5) ** 2
    ref = -(diffs * mask).reshape(2, -1).sum(1)
    assert torch.allclose(penalize_boundary_complexity(w=3)(feats), torch.from_numpy(ref))


def test_lucid_interpolate_alignment_and_whitened_direction_match_numpy():
    from invviz.optvis import alignment, channel_interpolate, whitened_direction, whitening

    f = torch.rand(5, 4, 3, 3, dtype=torch.float64)
    a = f.numpy()
    got = channel_interpolate("l", 1, "l", 3)({"l": f})
    w = np.arange(5) / 4.0
    ref = (1 - w) * a[:, 1].mean((1, 2)) + w * a[:, 3].mean((1, 2))
    assert torch.allclose(got, torch.from_numpy(ref))
    ref_align = -sum(((a[i] - a[i + d]) ** 2).mean() / 2.0 ** d for d in (1, 2, 3, 4) for i in range(5 - d))
    assert float(alignment("l")({"l": f}).sum()) == pytest.approx(ref_align)
    acts = np.random.default_rng(0).random((50, 4))
    s_np = np.linalg.inv(acts.T @ acts / 50 + 1e-3 * np.diag(acts.T @ acts / 50).mean() * np.eye(4))
    s = whitening(torch.from_numpy(acts))
    np.testing.assert_allclose(s.numpy(), s_np, rtol=1e-5)
    vec = np.array([0.2, 1.0, 0.0, 0.5])
    got = whitened_direction("l", vec, s, cossim_pow=2.0, x=1, y=2)({"l": f})
    v2 = vec @ s_np
    at = a[:, :, 2, 1]  # (B, C) at row 2, column 1
    dot = (at * v2).mean(1)
    cos = np.maximum(0.1, dot / (1e-4 + np.sqrt((at ** 2).sum(1))))
    np.testing.assert_allclose(got.numpy(), dot * cos ** 2, rtol=1e-5)


def test_neuron_groups_at_positions_and_objective_algebra_with_numbers():
    f = torch.rand(2, 5, 4, 4, dtype=torch.float64)
    g = units("l", {1: 2.0, 3: -1.0}, positions=[(0, 1), (2, 3)])({"l": f})
    ref = (2 * f[:, 1] - f[:, 3])[:, [1, 3], [0, 2]].mean(1)  # rows y = 1, 3; columns x = 0, 2
    assert torch.allclose(g, ref)
    c = channel("l", 2)
    base = c({"l": f})
    for obj, want in [(c + 1, base + 1), (1 + c, base + 1), (c - 2, base - 2), (3 - c, 3 - base), (c / 2, base / 2),
                      (c ** 2, base ** 2), (c * c, base * base), (-c + 0.5, 0.5 - base), (2 * (c + 1), 2 * base + 2)]:
        assert torch.allclose(obj({"l": f}), want), obj
    assert channel("l", 1) + 0 is not None and "+ 1" in repr(c + 1)
    with pytest.raises(ObjectiveError, match="zero"):
        c / 0
    with pytest.raises(TypeError):
        c + "x"
    lucid_style = as_objective("l:2")
    assert torch.allclose(lucid_style({"l": f}), base)
    with pytest.raises(ObjectiveError, match="one argument"):
        as_objective(lambda a, b: a, "l")


def test_total_variation_is_the_negative_anisotropic_variation():
    """An analytic case: the sign (a penalty to maximize) and the value on a hand-made image."""
    img = torch.zeros(2, 3, 4, 4)
    img[0, :, :, 2:] = 1.0  # one vertical edge: 4 rows x 1 jump x 3 channels
    tv = total_variation()({IMAGE: img})
    assert tv.shape == (2,) and float(tv[1]) == 0.0
    assert float(tv[0]) < 0  # rendering maximizes: smoother images score higher
    # mean absolute neighbour differences: 12 jumps of 1 among the 36 horizontal pairs, none among the vertical
    assert float(tv[0]) == pytest.approx(-1 / 3, rel=1e-6)
    # and a render with it as its only objective makes a noisy image smoother
    smooth = invviz.visualize(nn.Identity(), None, total_variation(), steps=20, size=16, param="pixel",
                              transforms="none", progress=False, preprocessing=Preprocessing(source="test"))
    assert float(smooth.history[-1]) > float(smooth.history[0])
