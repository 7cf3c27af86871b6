"""Behaviour of the metric functions: identical images, noise, input checks, small images, gradients."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sicodec import metrics
from sicodec.errors import ImageError
from sicodec.image import SicodecNotice


@pytest.fixture(scope="module")
def image(make_image):
    return make_image(176, 192)


def noisy(img, sigma, seed=1):
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_identical_images(image, weights_dir):
    assert metrics.psnr(image, image) == math.inf  # documented: no error at all gives infinite PSNR
    assert metrics.ms_ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert metrics.lpips(image, image, weights=weights_dir) == pytest.approx(0.0, abs=1e-6)
    assert metrics.dists(image, image, weights=weights_dir) == pytest.approx(0.0, abs=1e-5)


def test_psnr_known_value_and_pil_input(image):
    shifted = image.astype(np.int16) + 1
    shifted[image == 255] -= 2
    expected = 10 * math.log10(255**2)  # MSE 1
    assert metrics.psnr(image, shifted.astype(np.uint8)) == pytest.approx(expected, abs=1e-9)
    other = noisy(image, 10)
    assert metrics.psnr(Image.fromarray(image), Image.fromarray(other)) == metrics.psnr(image, other)


def test_ms_ssim_decreases_with_noise(image):
    values = [metrics.ms_ssim(image, noisy(image, s)) for s in (2, 8, 20, 50)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert 0 < values[-1] < values[0] < 1


def test_ms_ssim_small_images(make_image):
    img = make_image(100, 120)
    with pytest.warns(SicodecNotice, match="4 scales"):
        value = metrics.ms_ssim(img, noisy(img, 10))
    assert 0 < value < 1
    with pytest.raises(ImageError, match="at least 11 px"):
        metrics.ms_ssim(img[:8, :8], img[:8, :8])
    assert metrics.classic.scales_for(161, 500) == 5 and metrics.classic.scales_for(160, 500) == 4


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), "differ in size"),
    (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32), "uint8 HxWx3"),
    (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "uint8 HxWx3"),
    (Image.new("RGBA", (8, 8)), Image.new("RGBA", (8, 8)), "mode RGBA"),
    ("a.png", "b.png", "numpy array or a PIL image"),
])
def test_bad_inputs(a, b, match):
    with pytest.raises(ImageError, match=match):
        metrics.psnr(a, b)


def test_lpips_is_a_differentiable_loss(weights_dir):
    model = metrics.LPIPS.from_weights(weights_dir)
    target = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    x.requires_grad_(True)
    loss = model(x, target)
    assert loss.shape == (2,) and torch.all(loss > 0)
    loss.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_dists_gradient_flows(weights_dir):
    model = metrics.DISTS.from_weights(weights_dir)
    y = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3), requires_grad=True)
    model(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ms_ssim_tensor_gradient():
    y = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    x = (y + 0.05).clamp(0, 1).requires_grad_(True)
    with pytest.warns(SicodecNotice):
        metrics.ms_ssim_tensor(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_names_stay_functions_after_submodule_imports():
    from sicodec.metrics.dists import DISTS  # noqa: F401
    from sicodec.metrics.lpips import LPIPS  # noqa: F401

    assert metrics.lpips.__name__ == "lpips_score" and metrics.dists.__name__ == "dists_score"


def test_import_loads_no_network():
    code = ("import sys, sicodec.metrics; "
            "assert sys.modules['sicodec.metrics.lpips']._cached.cache_info().currsize == 0; "
            "assert sys.modules['sicodec.metrics.dists']._cached.cache_info().currsize == 0")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
