"""Tiled analysis and synthesis: bounded memory for huge images, and no seams."""

import numpy as np
import pytest
import torch

import sicodec
from sicodec.models.tiling import run_tiled
from conftest import kodak, make_tiny_model


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


def test_tiles_with_enough_halo_equal_the_whole(model):
    torch.manual_seed(0)
    x, y = torch.rand(1, 3, 320, 256), torch.randn(1, 24, 20, 16) * 3
    with torch.no_grad():
        for fn, v, units in ((model.g_a, x, (16, 1)), (model.g_s, y, (1, 16))):
            whole = fn(v)
            tiled = run_tiled(fn, v, *units, tile=4, halo=2)
            assert tiled.shape == whole.shape
            assert float((tiled - whole).abs().max()) < 1e-5 * float(whole.abs().max())
            without = run_tiled(fn, v, *units, tile=4, halo=0)  # no context: the tile borders are wrong
            assert float((without - whole).abs().max()) > 1e-2 * float(whole.abs().max())


def test_one_tile_is_the_plain_transform(model):
    x = torch.rand(1, 3, 64, 128)
    calls = []
    run_tiled(lambda v: calls.append(v.shape) or model.g_a(v), x, 16, 1, tile=8, halo=4)
    assert calls == [x.shape]


def _border_mask(h, w, period, width=4):
    rows = (np.arange(h) % period < width) | (np.arange(h) % period >= period - width)
    cols = (np.arange(w) % period < width) | (np.arange(w) % period >= period - width)
    mask = rows[:, None] | cols[None, :]
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = False, False, False, False  # image edges
    return mask


def test_tiled_decoding_of_a_photo_is_seamless():
    """The shipped hyperprior with 64-pixel tiles: the same image as untiled coding, and as good along
    the tile borders as elsewhere."""
    from PIL import Image

    model = sicodec.load_model("hyperprior-q4")
    image = Image.open(kodak(23)).convert("RGB").crop((128, 64, 512, 384))
    original = np.asarray(image, np.float64)
    whole = np.asarray(sicodec.decompress(sicodec.compress(image, model=model), model=model), np.float64)
    model.tile = 4  # 64 pixels
    try:
        tiled = np.asarray(sicodec.decompress(sicodec.compress(image, model=model), model=model), np.float64)
    finally:
        del model.tile
    assert np.abs(tiled - whole).max() <= 1
    mask = _border_mask(*original.shape[:2], period=64)
    err = (tiled - original) ** 2
    psnr_border = 10 * np.log10(255**2 / err[mask].mean())
    psnr_inside = 10 * np.log10(255**2 / err[~mask].mean())
    assert abs(psnr_border - psnr_inside) < 1.0
