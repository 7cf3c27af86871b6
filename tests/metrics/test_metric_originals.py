"""LPIPS and DISTS weights assembled from the original files in the torch hub cache (torchvision checkpoints,
the lpips heads, DISTS alpha/beta), and downloading them only when allowed. Offline: the "original" files are
built from the safetensors copies in shared/weights, under the original key names."""

import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from sicodec import metrics
from sicodec.errors import ModelError
from sicodec.metrics.weights import (
    ALEXNET, DISTS_FILE, DISTS_HEADS, DOWNLOAD_ENV_VAR, ENV_VAR, LPIPS_FILE, LPIPS_HEADS, ORIGINALS, VGG16,
    locate_weights,
)

PARITY = Path(__file__).resolve().parents[3] / "shared" / "metric-parity"
ALL_ORIGINALS = [o for group in ORIGINALS.values() for o in group]


@pytest.fixture(scope="session")
def originals_dir(weights_dir, tmp_path_factory) -> Path:
    """A folder holding the four original files, made from the safetensors copies (as torch.save'd state dicts)."""
    out = tmp_path_factory.mktemp("originals")
    lp = load_file(str(weights_dir / LPIPS_FILE))
    ds = load_file(str(weights_dir / DISTS_FILE))
    # torchvision checkpoints hold the whole classifier; a small stand-in for its first linear layer is enough
    alexnet = {k: v for k, v in lp.items() if k.startswith("features.")} | {"classifier.1.weight": torch.ones(8, 8)}
    vgg16 = {k: v for k, v in ds.items() if k.startswith("features.")} | {"classifier.0.weight": torch.ones(8, 8)}
    torch.save(alexnet, out / ALEXNET.name)
    torch.save({f"lin{i}.model.1.weight": lp[f"lin.{i}.weight"] for i in range(5)}, out / LPIPS_HEADS.name)
    torch.save(vgg16, out / VGG16.name)
    torch.save({"alpha": ds["alpha"], "beta": ds["beta"]}, out / DISTS_HEADS.name)
    return out


@pytest.fixture
def hub(originals_dir, tmp_path, monkeypatch) -> Path:
    """A fresh torch hub cache (via $TORCH_HOME) holding links to the four original files; $SICODEC_METRIC_WEIGHTS
    unset, so no safetensors file is found. Returns the checkpoints folder."""
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for o in ALL_ORIGINALS:
        (checkpoints / o.name).symlink_to(originals_dir / o.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return checkpoints


@pytest.fixture
def downloads(monkeypatch, originals_dir):
    """Replace torch's downloader by a fake that records (url, dst, hash_prefix) and writes the wanted original."""
    calls = []
    by_url = {o.url: o.name for o in ALL_ORIGINALS}

    def fake(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        shutil.copyfile(originals_dir / by_url[url], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    return calls


def _pair():
    """A 256x256 crop of one metric-parity pair (the whole 512x384 pair costs DISTS about 3.5 s per evaluation)."""
    ref, dist = PARITY / "ref" / "I06.png", PARITY / "dist" / "I06.png"
    if not ref.is_file() or not dist.is_file():
        pytest.skip(f"metric-parity pair I06 not available in {PARITY}")
    return [np.asarray(Image.open(p).convert("RGB"))[64:320, 128:384] for p in (ref, dist)]


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_originals_give_the_same_values_as_safetensors(hub, weights_dir):
    assert locate_weights(LPIPS_FILE) == (hub / ALEXNET.name, hub / LPIPS_HEADS.name)
    assert locate_weights(DISTS_FILE) == (hub / VGG16.name, hub / DISTS_HEADS.name)
    assert _same_state(metrics.LPIPS.from_weights(), metrics.LPIPS.from_weights(weights_dir))
    assert _same_state(metrics.DISTS.from_weights(), metrics.DISTS.from_weights(weights_dir))
    a, b = _pair()
    for score in (metrics.lpips, metrics.dists):
        from_originals = score(a, b)
        assert from_originals == score(a, b, weights=weights_dir)
        assert 0 < from_originals < 1
    assert metrics.load_lpips() is metrics.load_lpips()  # cached per process like the safetensors networks


def test_safetensors_file_is_preferred(hub, weights_dir):
    (hub / LPIPS_FILE).symlink_to(weights_dir / LPIPS_FILE)
    assert locate_weights(LPIPS_FILE) == (hub / LPIPS_FILE,)


def test_missing_head_file_gives_one_line_model_error(hub):
    (hub / LPIPS_HEADS.name).unlink()
    with pytest.raises(ModelError) as e:
        metrics.LPIPS.from_weights()
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{LPIPS_FILE} not found" in msg and f"missing from the torch hub cache ({LPIPS_HEADS.name})" in msg
    for part in (f"${ENV_VAR}", str(hub), ALEXNET.name, LPIPS_HEADS.url, f"{DOWNLOAD_ENV_VAR}=1"):
        assert part in msg
    with pytest.raises(ModelError, match=LPIPS_HEADS.name):
        metrics.lpips(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))
    (hub / VGG16.name).unlink()
    with pytest.raises(ModelError, match=rf"missing from the torch hub cache \({VGG16.name}\).*{VGG16.url}"):
        metrics.DISTS.from_weights()


def test_no_download_unless_allowed(hub, downloads, monkeypatch):
    (hub / LPIPS_HEADS.name).unlink()
    with pytest.raises(ModelError):
        locate_weights(LPIPS_FILE)
    monkeypatch.setenv(DOWNLOAD_ENV_VAR, "0")
    with pytest.raises(ModelError):
        metrics.LPIPS.from_weights()
    monkeypatch.setenv(DOWNLOAD_ENV_VAR, "1")
    with pytest.raises(ModelError):  # the argument wins over the environment
        locate_weights(LPIPS_FILE, download=False)
    with pytest.raises(ModelError, match="looked in: .*nowhere"):  # an explicit path is not completed either
        metrics.LPIPS.from_weights(hub / "nowhere")
    assert downloads == []


def test_download_when_allowed_by_environment(hub, downloads, monkeypatch, weights_dir):
    (hub / ALEXNET.name).unlink()
    (hub / LPIPS_HEADS.name).unlink()
    monkeypatch.setenv(DOWNLOAD_ENV_VAR, "1")
    model = metrics.LPIPS.from_weights()
    assert downloads == [
        ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", str(hub / ALEXNET.name), "7be5be79"),
        ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
         str(hub / LPIPS_HEADS.name), None),
    ]
    assert _same_state(model, metrics.LPIPS.from_weights(weights_dir))
    metrics.LPIPS.from_weights()
    assert len(downloads) == 2  # present now: not fetched again


def test_download_when_allowed_by_argument(hub, downloads):
    shutil.rmtree(hub)  # the hub cache folder does not exist yet
    metrics.DISTS.from_weights(download=True)
    assert downloads == [
        ("https://download.pytorch.org/models/vgg16-397923af.pth", str(hub / VGG16.name), "397923af"),
        ("https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt", str(hub / DISTS_HEADS.name), None),
    ]


def test_failed_download_gives_model_error(hub, monkeypatch):
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    (hub / DISTS_HEADS.name).unlink()
    with pytest.raises(ModelError, match=f"cannot download {DISTS_HEADS.url} .*name resolution") as e:
        metrics.DISTS.from_weights(download=True)
    assert "\n" not in str(e.value)


class NotATensor:
    """A class torch's weights_only unpickler must refuse to build."""


def test_bad_original_files_give_model_error(hub):
    (hub / LPIPS_HEADS.name).unlink()
    torch.save({"lin0.model.1.weight": NotATensor()}, hub / LPIPS_HEADS.name)
    with pytest.raises(ModelError, match="cannot read .*weights_only loader refused it: .*NotATensor") as e:
        metrics.LPIPS.from_weights()
    assert "\n" not in str(e.value)
    (hub / LPIPS_HEADS.name).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=f"cannot read metric weights .*{LPIPS_HEADS.name}"):
        metrics.LPIPS.from_weights()
    (hub / DISTS_HEADS.name).unlink()
    torch.save({"alpha": torch.zeros(1, 1475, 1, 1)}, hub / DISTS_HEADS.name)
    with pytest.raises(ModelError, match="do not fit DISTS .*missing: beta"):
        metrics.DISTS.from_weights()
    (hub / DISTS_HEADS.name).unlink()
    torch.save([torch.zeros(1)], hub / DISTS_HEADS.name)
    with pytest.raises(ModelError, match="not a state dict"):
        metrics.DISTS.from_weights()
