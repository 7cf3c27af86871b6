"""Encoder-side latent refinement: it lowers the coding objective, never raises it, works tile by tile,
ignores padding, is reproducible, and its files decode with the unchanged decoder."""

import numpy as np
import pytest
import torch
from PIL import Image

from sicodec import codec
from sicodec.image import prepare
from sicodec.entropy.ops import bits, likelihood_bound
from sicodec.models.refine import refine_latent

SAMPLE = "sicodec/samples/kodim23-384x256.png"


def objective(model, x, y_int, scales, valid=None):
    """bits + lambda * 255^2 * MSE on the `valid` pixels, in bits per pixel, of integer latents."""
    h, w = valid or x.shape[-2:]
    with torch.no_grad():
        x_hat = model.g_s(y_int)[..., :h, :w]
        mse = float(((x_hat - x[..., :h, :w]) ** 2).mean())
        rate = float(bits({"y": likelihood_bound(model.gaussian.likelihood(y_int, scales))}))
        return rate / (h * w) + model.lmbda * 255**2 * mse


def latents(model, x):
    with torch.no_grad():
        y = model.g_a(x)
        return y, model.hyper_params(torch.round(model.side_latent(y)))


@pytest.fixture
def tiny(tiny_model):
    tiny_model.lmbda = 0.05
    yield tiny_model
    tiny_model.lmbda = None


@pytest.fixture
def crop():
    return codec._to_tensor(prepare(SAMPLE).pixels[:128, 64:192], 64)


@pytest.mark.parametrize("tile", [64, 3])  # one tile, then 3x3 latent tiles with their context
def test_refinement_never_raises_the_objective_and_lowers_it(tiny, crop, tile, monkeypatch):
    monkeypatch.setattr(tiny, "tile", tile)
    y, scales = latents(tiny, crop)
    refined = refine_latent(tiny, crop, y, scales, steps=15, lmbda=tiny.lmbda)
    assert torch.equal(refined, torch.round(refined))
    before, after = objective(tiny, crop, torch.round(y), scales), objective(tiny, crop, refined, scales)
    assert after < before


def test_padding_outside_the_image_does_not_count(tiny, crop):
    y, scales = latents(tiny, crop)
    other = crop.clone()
    other[..., 100:, :] = 1.0 - other[..., 100:, :]  # rows below 100 are padding: only the loss sees them
    runs = [refine_latent(tiny, x, y, scales, steps=5, lmbda=tiny.lmbda, valid=(100, 128)) for x in (crop, other)]
    assert torch.equal(runs[0], runs[1])


def test_shipped_hyperprior_refined_files_are_smaller_or_better_and_decode_unchanged(tmp_path):
    model = codec.load_model("hyperprior", 2)
    assert model.lmbda == 0.0035
    path = tmp_path / "crop.png"
    Image.fromarray(prepare(SAMPLE).pixels[:96, :160]).save(path)  # padded to 128x192: valid= matters
    reference = prepare(path).pixels.astype(np.float64)

    def cost(data):  # real bits per pixel + lambda * 255^2 * MSE of what decoding returns
        decoded = np.asarray(codec.decompress(data, model=model).convert("RGB"), dtype=np.float64)
        return 8 * len(data) / reference[..., 0].size + model.lmbda * np.mean((decoded - reference) ** 2)

    plain = codec.compress(path, model=model)
    refined = codec.compress(path, model=model, refine=30)
    assert refined != plain and refined == codec.compress(path, model=model, refine=30)  # reproducible
    assert cost(refined) < 0.99 * cost(plain)  # measured: -1.7 % (q2 at 30,800 steps; -2.8 % at 29,800)


def test_eval_estimates_the_rate_of_the_refined_latents(tmp_path):
    from sicodec.evaluate import evaluate_results

    Image.fromarray(prepare(SAMPLE).pixels[:, :256]).save(tmp_path / "a.png")
    results = evaluate_results("hyperprior-q2", tmp_path, metrics=("psnr",), refine=10)
    r = results["results"]
    assert "refine 10" in results["name"] and results["meta"]["refine"] == 10
    assert abs(r["estimated_bpp"][0] - r["bpp"][0]) < 0.1 * r["bpp"][0]


def test_refinement_is_refused_where_it_cannot_apply(tiny_model):
    from sicodec.errors import ModelError

    with pytest.raises(ModelError, match="trade-off"):  # an unregistered model: lambda unknown
        codec.compress(SAMPLE, model=tiny_model, refine=5)
