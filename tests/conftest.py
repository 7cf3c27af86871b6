from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
KODAK = SHARED / "data" / "kodak"


def make_tiny_model(seed: int = 0):
    """A small hyperprior whose random weights are scaled so that its latents are far from trivial."""
    from sicodec.models.registry import build_model

    torch.manual_seed(seed)
    m = build_model("hyperprior", N=16, M=24)
    with torch.no_grad():
        m.g_a[-1].weight.mul_(40.0)
        m.h_a[-1].weight.mul_(5.0)
        m.h_s[-2].bias.add_(0.5)
    m.name = "hyperprior-test"
    return m.eval()


@pytest.fixture(scope="session")
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_model):
    from sicodec.models.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(tiny_model, path, half=False)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def kodak(n: int) -> Path:
    path = KODAK / f"kodim{n:02d}.png"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def make_tiny_sic(seed: int = 0, transform: str = "conv"):
    """A small SIC model (4 levels of 8 channels) with latents scaled away from zero."""
    from sicodec.models.registry import build_model

    torch.manual_seed(seed)
    m = build_model("sic", M=32, slices=4, N=16, hyper=16, param_hidden=16, transform=transform)
    with torch.no_grad():
        m.g_a[-1].weight.mul_(30.0)
        m.h_s[-1].bias[32:].add_(2.0)  # sigma_h clearly above zero, so gaussian sampling varies
    m.name = "sic-test"
    return m.eval()


@pytest.fixture(scope="session")
def tiny_sic():
    return make_tiny_sic()
