"""The hyperprior's training proxies for rounding: "noise" and "mixed" (RateDistortionLoss(quantization=...))."""

import pytest
import torch

from sicodec.entropy.ops import likelihood_bound
from sicodec.errors import SicodecError
from sicodec.train.loss import RateDistortionLoss
from conftest import make_tiny_model


def _pass(quantization, seed=0):
    model = make_tiny_model().train()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(seed)
    return model, x, model(x, quantization=quantization)


def test_mixed_decodes_the_rounded_latents_and_rates_the_noisy_ones():
    model, x, out = _pass("mixed", seed=3)
    with torch.no_grad():
        y = model.g_a(x)
        z = model.side_latent(y)
        torch.manual_seed(3)  # the same noise draws as the pass: z's, then y's
        z_noise, y_noise = torch.empty_like(z).uniform_(-0.5, 0.5), torch.empty_like(y).uniform_(-0.5, 0.5)
        assert torch.equal(out["x_hat"], model.g_s(torch.round(y)))  # what a decoder sees
        expected_z = likelihood_bound(model.entropy_z.likelihood(z + z_noise))
        expected_y = likelihood_bound(model.gaussian.likelihood(y + y_noise, model.hyper_params(torch.round(z))))
    assert torch.allclose(out["likelihoods"]["z"], expected_z) and torch.allclose(out["likelihoods"]["y"], expected_y)
    _, _, noisy = _pass("noise", seed=3)  # the classic proxy decodes y plus the same noise
    with torch.no_grad():
        assert torch.allclose(noisy["x_hat"], model.g_s(y + y_noise), atol=1e-6)


def test_mixed_gives_the_encoder_gradients_through_the_distortion():
    model, x, out = _pass("mixed")
    torch.mean((out["x_hat"] - x) ** 2).backward()  # distortion only: reaches g_a only straight through round
    assert model.g_a[0].weight.grad.abs().sum() > 0 and model.g_s[0].weight.grad.abs().sum() > 0


def test_outside_training_both_proxies_round():
    model = make_tiny_model()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x, quantization="mixed"), model(x, quantization="noise")
    assert torch.equal(a["x_hat"], b["x_hat"]) and torch.equal(a["likelihoods"]["y"], b["likelihoods"]["y"])


def test_an_unknown_quantization_is_a_clear_error():
    with pytest.raises(SicodecError, match="quantization must be one of noise, mixed"):
        RateDistortionLoss(0.01, quantization="round")
    with pytest.raises(SicodecError, match="quantization must be one of noise, mixed, not 'round'"):
        make_tiny_model()(torch.rand(1, 3, 64, 64), quantization="round")
