"""Grad-IFV's objective: a direction on the aggregated response (invviz/ifv/objective.py)."""

import warnings

import pytest
import torch

from invviz.errors import ObjectiveError
from invviz.ifv import IFVObjective, aggregate, aggregated_direction


@pytest.mark.parametrize("agg", ["mean", "maxpool_mean", "pick"])
def test_direction_on_aggregated_response_is_the_papers_objective(agg):
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
    got = aggregated_direction("l", vec, form=IFVObjective(cossim_pow=2.0, aggregation=agg))({"l": f})
    assert torch.allclose(got, (v @ vec) * cos ** 2)


def test_aggregated_direction_is_not_even_in_the_direction():
    """With p = 1, <v, d> cos(v, d) = <v, d>^2 / |v| would reward anti-alignment; the seed objective as invviz
    implements it is the dot product where cos <= 0, so -d scores below d and the two branches meet at 0."""
    f = torch.rand(1, 4, 3, 3, dtype=torch.float64) + 0.1
    vec = torch.rand(4, dtype=torch.float64)
    up = aggregated_direction("l", vec, form=IFVObjective(cossim_pow=1.0, aggregation="mean"))({"l": f})
    down = aggregated_direction("l", -vec, form=IFVObjective(cossim_pow=1.0, aggregation="mean"))({"l": f})
    v = f.mean(dim=(2, 3))[0]
    assert float(up) > 0 > float(down) and torch.allclose(down, -(v @ vec).reshape(1))
    ortho = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    g = torch.zeros(1, 4, 1, 1, dtype=torch.float64)
    g[0, :2, 0, 0] = 1.0
    assert float(aggregated_direction("l", ortho, form=IFVObjective(cossim_pow=1.0, aggregation="mean"))({"l": g})) == 0.0


def test_direction_with_one_vector_per_batch_element():
    f = torch.rand(3, 5, 4, 4, dtype=torch.float64)
    vecs = torch.rand(3, 5, dtype=torch.float64)
    both = aggregated_direction("l", vecs, form=IFVObjective(cossim_pow=1.0, aggregation="maxpool_mean"))({"l": f})
    single = torch.stack([aggregated_direction("l", vecs[i], form=IFVObjective(cossim_pow=1.0, aggregation="maxpool_mean"))({"l": f})[i]
                          for i in range(3)])
    assert torch.allclose(both, single)
    with pytest.raises(ObjectiveError, match="one per batch element"):
        aggregated_direction("l", vecs[:2], form=IFVObjective(aggregation="mean"))({"l": f})
    picked = aggregated_direction("l", vecs[0], IFVObjective(0.0, aggregation="pick", position=(1, 2)))({"l": f})
    assert torch.allclose(picked, f[:, :, 1, 2] @ vecs[0])


def test_the_objective_form_is_checked_once_with_typed_errors():
    assert IFVObjective() == IFVObjective(1.0, "maxpool_mean", None)
    assert IFVObjective(position=[1, 2]).position == (1, 2)
    for bad in (dict(cossim_pow=-1.0), dict(cossim_pow=float("nan")), dict(aggregation="median"),
                dict(position=(1.5, 2)), dict(position=3)):
        with pytest.raises(ObjectiveError):
            IFVObjective(**bad)
    with pytest.raises(ObjectiveError, match="IFVObjective"):
        aggregated_direction("l", torch.ones(3), {"aggregation": "mean"})


def test_match_reads_the_position_of_its_form():
    """`match` takes the position with the rest of the form: with "pick", only the picked position's receptive field
    of the image is optimized, so two matches from the same start differ only inside their two receptive fields."""
    from invviz.ifv import match

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh()).eval()  # 16 px -> a 14 x 14 grid
    images = {}
    for pos in ((0, 0), (10, 10)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = match(net, "1", 0, net, "1", form=IFVObjective(aggregation="pick", position=pos), size=16,
                      adam_steps=5, lbfgs_steps=0, reopt_steps=1, points=1)
        images[pos] = m.image
    differs = (images[(0, 0)] - images[(10, 10)]).abs().amax(dim=(0, 1)) > 0  # (16, 16)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[0:3, 0:3] = inside[10:13, 10:13] = True
    assert bool(differs[0:3, 0:3].any()) and bool(differs[10:13, 10:13].any())
    assert not bool(differs[~inside].any())
