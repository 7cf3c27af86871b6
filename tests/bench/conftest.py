"""Fixtures for the benchmark tests: two small Kodak crops and the offline metric weights beside the repo."""

from pathlib import Path

import pytest
import torch
from PIL import Image

SHARED = Path(__file__).resolve().parents[3] / "shared"
KODAK = SHARED / "data" / "kodak"
WEIGHTS = SHARED / "weights"
CROPS = (("kodim01.png", (300, 200)), ("kodim23.png", (400, 150)))  # (file, top-left corner) of 128x96 crops


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine more threads only spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def crops_dir(tmp_path_factory) -> Path:
    """A folder with two 128x96 crops of Kodak images (PNG)."""
    folder = tmp_path_factory.mktemp("crops")
    for name, (x, y) in CROPS:
        src = KODAK / name
        if not src.is_file():
            pytest.skip(f"{src} not available")
        with Image.open(src) as im:
            im.convert("RGB").crop((x, y, x + 128, y + 96)).save(folder / name)
    return folder


@pytest.fixture
def metric_weights(monkeypatch):
    """Point $SICODEC_METRIC_WEIGHTS at the shared weights; the metric names the benchmark can use with them."""
    if (WEIGHTS / "lpips_alex.safetensors").is_file() and (WEIGHTS / "dists_vgg16.safetensors").is_file():
        monkeypatch.setenv("SICODEC_METRIC_WEIGHTS", str(WEIGHTS))
        return ("psnr", "ms-ssim", "lpips", "dists")
    return ("psnr", "ms-ssim")


@pytest.fixture
def no_metric_weights(monkeypatch, tmp_path):
    """No LPIPS/DISTS weights anywhere: an empty $SICODEC_METRIC_WEIGHTS and an empty torch hub cache."""
    monkeypatch.setenv("SICODEC_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
