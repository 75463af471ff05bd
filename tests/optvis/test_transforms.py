import math

import torch

from invviz.optvis import Compose, Jitter, Pad, RandomRotate, RandomScale, Resize, standard_transforms


def test_rotation_by_90_degrees_is_exact_on_a_square():
    x = torch.rand(1, 3, 8, 8)
    out = RandomRotate([90.0], fill=0.0)(x)
    expect = torch.rot90(x, k=-1, dims=(2, 3))  # y down: +90 degrees in grid coordinates turns clockwise on screen
    if not torch.allclose(out, expect, atol=1e-5):
        expect = torch.rot90(x, k=1, dims=(2, 3))
    assert torch.allclose(out, expect, atol=1e-5)
    assert torch.equal(RandomRotate([0.0])(x), x)


def test_pad_jitter_scale_shapes_and_values():
    x = torch.rand(2, 3, 10, 12)
    p = Pad(3)(x)
    assert p.shape == (2, 3, 16, 18) and float(p[0, 0, 0, 0]) == 0.5
    j = Jitter(4)(x, torch.Generator().manual_seed(0))
    assert j.shape == (2, 3, 7, 9)
    s = RandomScale([1.5])(x)
    assert s.shape == (2, 3, 15, 18)
    assert Resize(5)(x).shape == (2, 3, 5, 5)


def test_standard_transforms_deterministic_with_generator():
    x = torch.rand(1, 3, 32, 32)
    t = standard_transforms()
    a = [t(x, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    sizes = {tuple(t(x, g).shape) for g in [torch.Generator().manual_seed(i) for i in range(20)]}
    assert all(abs(h - (32 + 24 - 7 - 3)) <= math.ceil(0.1 * 49) + 1 for _, _, h, _ in sizes)
    assert len(sizes) > 1  # the scale varies
    assert isinstance(Compose([Pad(1)]), torch.nn.Module)
