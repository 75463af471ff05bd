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
    assert j.shape == (2, 3, 6, 8)  # Lucid's jitter crops d pixels
    s = RandomScale([1.5])(x)
    assert s.shape == (2, 3, 15, 18)
    assert Resize(5)(x).shape == (2, 3, 5, 5)


def test_standard_transforms_deterministic_with_generator():
    x = torch.rand(1, 3, 32, 32)
    t = standard_transforms()
    a = [t(x, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    sizes = {tuple(t(x, g).shape) for g in [torch.Generator().manual_seed(i) for i in range(20)]}
    assert all(abs(h - (32 + 24 - 8 - 4)) <= math.ceil(0.1 * 48) + 1 for _, _, h, _ in sizes)
    assert len(sizes) > 1  # the scale varies
    assert isinstance(Compose([Pad(1)]), torch.nn.Module)


def test_lucid_jitter_crops_d_pixels_at_every_offset_0_to_d():
    """Lucid's jitter is TF's random_crop to H - d: offsets 0..d, both ends included (invviz had 0..d-1)."""
    x = torch.arange(10 * 10, dtype=torch.float32).view(1, 1, 10, 10)
    seen = set()
    for seed in range(200):
        out = Jitter(3)(x, torch.Generator().manual_seed(seed))
        assert out.shape == (1, 1, 7, 7)
        dy, dx = divmod(int(out[0, 0, 0, 0]), 10)
        assert torch.equal(out, x[:, :, dy:dy + 7, dx:dx + 7])
        seen.add((dy, dx))
    assert seen == {(a, b) for a in range(4) for b in range(4)}


def test_blur_padding_crop_flip_translate_against_references():
    import numpy as np
    import scipy.ndimage

    from invviz.optvis import GaussianBlur, Normal, RandomCrop, RandomFlip, Translate, Uniform

    x = torch.rand(2, 3, 17, 13, dtype=torch.float64)
    a = x.numpy()
    blurred = GaussianBlur(1.3)(x)
    ref = scipy.ndimage.gaussian_filter(a, sigma=(0, 0, 1.3, 1.3), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(blurred.numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(Pad(4, mode="reflect")(x).numpy(), np.pad(a, ((0, 0), (0, 0), (4, 4), (4, 4)),
                                                                          mode="reflect"))
    crop = RandomCrop((5, 6))(x, torch.Generator().manual_seed(1))
    hits = [(i, j) for i in range(13) for j in range(8) if torch.equal(crop, x[:, :, i:i + 5, j:j + 6])]
    assert crop.shape == (2, 3, 5, 6) and len(hits) == 1
    assert torch.equal(RandomFlip(1.0, vertical=True)(x), x.flip(2).flip(3))
    assert torch.equal(RandomFlip(0.0)(x), x)
    shifted = Translate(2)(x, torch.Generator().manual_seed(3))
    padded = np.pad(a, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    assert shifted.shape == x.shape and any(
        np.allclose(shifted.numpy(), padded[:, :, i:i + 17, j:j + 13]) for i in range(5) for j in range(5))
    angles = [RandomRotate(Uniform(-5, 5)).angles.sample(torch.Generator().manual_seed(s)) for s in range(50)]
    assert -5 <= min(angles) < -3 and 3 < max(angles) <= 5
    scales = [Normal(1.0, 0.1).sample(torch.Generator().manual_seed(s)) for s in range(50)]
    assert 0.8 <= min(scales) and max(scales) <= 1.2 and len(set(scales)) == 50
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(RandomScale(Uniform(0.8, 1.2))(x, g1), RandomScale(Uniform(0.8, 1.2))(x, g2))


def test_fused_standard_transforms_are_lucids_chain_in_one_resampling():
    """Same draws, one affine map: on a smooth image (whose border equals the fill) the fused transform equals
    Lucid's five-step chain resized to its output size, up to interpolation (1e-2)."""
    from invviz.optvis import standard_transforms
    from invviz.optvis.transforms import FusedStandardTransforms

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64, dtype=torch.float64),
                            torch.linspace(-1, 1, 64, dtype=torch.float64), indexing="ij")
    bump = 0.4 * torch.sin(3 * xx + 1) * torch.cos(2 * yy) * (1 - xx ** 2) ** 2 * (1 - yy ** 2) ** 2
    x = (0.5 + bump)[None, None].expand(2, 3, 64, 64)
    for seed in range(8):
        chain = standard_transforms()(x, torch.Generator().manual_seed(seed))
        fused = FusedStandardTransforms(size=tuple(chain.shape[2:]))(x, torch.Generator().manual_seed(seed))
        assert float((chain - fused).abs().max()) < 1e-2
    same_size = standard_transforms(fused=True)(x, torch.Generator().manual_seed(0))
    assert same_size.shape == x.shape
