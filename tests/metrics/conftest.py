"""Shared fixtures for the metric tests: the offline weights and parity data in the `shared` folder beside the repo."""

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "weights"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each metric test on one intra-op thread: on a busy 2-core machine two threads spin-wait on each other
    (MS-SSIM went from 0.03 s to 1.5 s, DISTS from 3.3 s to 4.3 s). Restored afterwards for the other tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never download: $SICODEC_ALLOW_DOWNLOAD is unset and torch's downloader fails the test if reached
    (tests that check downloading replace it with a fake)."""
    from sicodec.metrics.weights import DOWNLOAD_ENV_VAR

    def refuse(url, dst, *args, **kwargs):
        raise AssertionError(f"a test tried to download {url} to {dst}")

    monkeypatch.delenv(DOWNLOAD_ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    if not (WEIGHTS / "lpips_alex.safetensors").is_file() or not (WEIGHTS / "dists_vgg16.safetensors").is_file():
        pytest.skip(f"metric weights not available in {WEIGHTS}")
    return WEIGHTS


@pytest.fixture(scope="session")
def make_image():
    """make_image(h, w, seed=0): a deterministic uint8 HxWx3 test image (colour gradients and a little noise)."""
    return _smooth_image


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [np.sin(6 * x + 3 * c) * np.cos(4 * y - c) for c in range(3)]
    img = 128 + 90 * np.stack(chans, -1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)
