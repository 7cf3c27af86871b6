from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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


def random_inception_tensors(seed: int = 0) -> dict:
    """A state dict for FID's Inception-v3 under pytorch-fid's names (with its unused `fc.*` and BatchNorm's
    counters): random convolutions scaled by sqrt(2 / fan_in), so that the features neither vanish nor explode."""
    from sicodec.metrics.inception import FIDInception

    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in FIDInception().state_dict().items()}
    for k, v in state.items():
        if k.endswith("conv.weight"):
            state[k] = torch.randn(v.shape, generator=g) * (2 / v[0].numel()) ** 0.5
    state["fc.weight"] = torch.randn(1008, 2048, generator=g) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    return state


@pytest.fixture(scope="session")
def random_inception_dir(tmp_path_factory) -> Path:
    """A folder holding inception_fid.safetensors with random weights (see `random_inception_tensors`)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("inception")
    save_file(random_inception_tensors(), str(folder / "inception_fid.safetensors"))
    return folder


@pytest.fixture
def random_inception(monkeypatch, random_inception_dir) -> Path:
    """$SICODEC_METRIC_WEIGHTS pointed at the random-weight Inception (FID and KID then run, on meaningless
    features: for testing the plumbing only)."""
    monkeypatch.setenv("SICODEC_METRIC_WEIGHTS", str(random_inception_dir))
    return random_inception_dir


@pytest.fixture
def make_images(tmp_path):
    """make_images(name, count, height, width, seed=0): a folder of random RGB PNGs under tmp_path."""
    def make(name: str, count: int, height: int, width: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        folder = tmp_path / name
        folder.mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        return folder
    return make


@pytest.fixture
def folder(make_images):
    return make_images("imgs", 4, 70, 80)
