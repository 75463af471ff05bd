import gzip
import os

import numpy as np
import pytest
import torch

from invviz.data import fashion_mnist, photo_crops, read_idx
from invviz.errors import DatasetNotFoundError, ImageSizeError, InvvizError
from invviz.metrics import frechet_distance, mean_pairwise_distance, psnr, ssim


def test_ssim_and_psnr_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 24, 19, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = ssim(a, b)
    for i in range(2):
        ref = structural_similarity(a[i].numpy(), b[i].numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, channel_axis=0)
        assert float(got[i]) == pytest.approx(ref, abs=1e-12)
        assert float(psnr(a[i], b[i])) == pytest.approx(peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(),
                                                                                data_range=1.0), abs=1e-10)
    assert float(ssim(a[0], a[0])) == pytest.approx(1.0)
    with pytest.raises(ImageSizeError):
        ssim(a, b[:, :, :10])


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, 2.0, 0.0])
    # same covariance, shifted mean: |mu_x - mu_y|^2
    assert frechet_distance(x, x + shift) == pytest.approx(5.0, rel=1e-6)
    # scaled: trace(C) + trace(4C) - 2 trace(2C) = trace(C)
    c = np.cov(x, rowvar=False)
    assert frechet_distance(x, 2 * x) == pytest.approx(np.trace(c) + float(((x.mean(0)) ** 2).sum()), rel=1e-6)
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_fashion_mnist_from_the_debian_package():
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("apt-get install dataset-fashion-mnist (.ci/run does)")
    x, y = fashion_mnist("test", limit=100)
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32 and 0 <= float(x.min()) < float(x.max()) <= 1
    assert y.shape == (100,) and set(y.tolist()) <= set(range(10))
    assert y[:5].tolist() == [9, 2, 1, 1, 6]  # the published first test labels


def test_idx_reader_rejects_truncated_and_missing_files(tmp_path):
    good = bytes([0, 0, 8, 2]) + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes(range(6))
    path = tmp_path / "x-idx2-ubyte.gz"
    path.write_bytes(gzip.compress(good))
    assert read_idx(str(path)).tolist() == [[0, 1], [2, 3], [4, 5]]
    path.write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(InvvizError, match="truncated"):
        read_idx(str(path))
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist("train", root=str(tmp_path))


def test_photo_crops_are_reproducible_images():
    a = photo_crops(5, 32, seed=3)
    assert a.shape == (5, 3, 32, 32) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, photo_crops(5, 32, seed=3)) and not torch.equal(a, photo_crops(5, 32, seed=4))


def test_photo_crops_dataset_holds_out_whole_photos_and_repeats_items():
    from invviz.data import PhotoCrops, split_photos

    train, held = split_photos(2)
    assert not set(train) & set(held) and len(held) == 2
    ds = PhotoCrops(32, names=train, length=6, seed=1)
    assert torch.equal(ds[3], ds[3]) and not torch.equal(ds[3], ds[4])
    assert ds[0].shape == (3, 32, 32) and float(ds[0].min()) >= 0 and float(ds[0].max()) <= 1
    plain = PhotoCrops(32, names=train, length=6, seed=1, flip=False, jitter=0)
    assert plain[2].shape == (3, 32, 32)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 3, 32, 32)
