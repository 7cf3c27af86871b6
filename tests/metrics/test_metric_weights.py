"""Where metric weights are found (explicit path, $SICODEC_METRIC_WEIGHTS, torch hub cache), errors, caching."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sicodec import metrics
from sicodec.errors import ModelError
from sicodec.metrics.weights import DISTS_FILE, ENV_VAR, LPIPS_FILE, find_weights


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An environment where no weights can be found: empty env folder, empty torch hub cache."""
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_missing_weights_give_model_error(no_weights):
    with pytest.raises(ModelError, match=f"{LPIPS_FILE} not found.*{ENV_VAR}=.*torch hub cache") as e:
        metrics.lpips(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match=DISTS_FILE):
        metrics.DISTS.from_weights()
    with pytest.raises(ModelError, match="looked in: .*nowhere"):
        find_weights(LPIPS_FILE, no_weights / "nowhere")


def test_search_order(no_weights, monkeypatch):
    hub = _touch(no_weights / "torch" / "hub" / "checkpoints" / LPIPS_FILE)
    assert find_weights(LPIPS_FILE) == hub
    env = _touch(no_weights / "env" / LPIPS_FILE)
    assert find_weights(LPIPS_FILE) == env
    explicit = _touch(no_weights / "mine" / LPIPS_FILE)
    assert find_weights(LPIPS_FILE, explicit.parent) == explicit
    assert find_weights(LPIPS_FILE, explicit) == explicit
    with pytest.raises(ModelError):  # an explicit path is not completed from the other places
        find_weights(DISTS_FILE, explicit.parent)
    monkeypatch.delenv(ENV_VAR)
    assert find_weights(LPIPS_FILE) == hub


def test_bad_files_give_model_error(tmp_path):
    (tmp_path / LPIPS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read"):
        metrics.LPIPS.from_weights(tmp_path)
    save_file({"alpha": torch.zeros(1, 1475, 1, 1)}, str(tmp_path / DISTS_FILE))
    with pytest.raises(ModelError, match="missing: .*features"):
        metrics.DISTS.from_weights(tmp_path)


def test_networks_are_cached_per_process(weights_dir):
    net = metrics.load_lpips(weights_dir)
    assert metrics.load_lpips(weights_dir / LPIPS_FILE) is net
    assert not net.training and not any(p.requires_grad for p in net.parameters())
