"""Devices: the transforms can run elsewhere while coding stays on the CPU; bad devices are clear errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sicodec
from sicodec.errors import ModelError


@pytest.fixture
def image():
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8))


def test_explicit_cpu_device_gives_the_same_file_and_pixels(tiny_sic, image):
    data = sicodec.compress(image, model=tiny_sic)
    assert sicodec.compress(image, model=tiny_sic, device="cpu") == data
    assert sicodec.decompress(data, model=tiny_sic, level=1, device="cpu").tobytes() == \
        sicodec.decompress(data, model=tiny_sic, level=1).tobytes()


@pytest.mark.parametrize("device, message", [("bogus", "unknown device"), ("meta", "not supported"),
                                             ("cuda:64", "not available")])
def test_unusable_devices_are_refused(tiny_sic, image, device, message):
    with pytest.raises(ModelError, match=message):
        sicodec.compress(image, model=tiny_sic, device=device)
    assert next(tiny_sic.g_a.parameters()).device.type == "cpu"


def test_a_cached_model_goes_back_to_the_cpu_and_a_given_model_stays_put(tiny_sic, image, tmp_path, monkeypatch):
    """A model loaded by name or file is shared by later calls: a call without a device must not inherit
    an earlier call's device. A model object the caller passes is the caller's to place."""
    from sicodec.models.base import LatentCodecModel
    from sicodec.models.weights import save_weights

    weights = tmp_path / "sic-test.safetensors"
    save_weights(tiny_sic, weights, half=False)
    placed = []
    monkeypatch.setattr(LatentCodecModel, "place_transforms", lambda self, device: placed.append(device) or self)
    data = sicodec.compress(image, model=weights)
    sicodec.decompress(data, model=weights)
    assert placed == [None, None]  # None: the CPU
    sicodec.decompress(data, model=weights, device="cpu")
    assert placed[-1] == "cpu"
    placed.clear()
    sicodec.decompress(sicodec.compress(image, model=tiny_sic), model=tiny_sic)
    assert placed == []


def test_cross_device_script_reports_identical_decodes_on_one_device(tiny_sic, image, tmp_path):
    """scripts/cross_device.py (run on a GPU machine with --device cuda), here CPU against CPU: every
    file decodes, in every fill mode, to the same pixels."""
    from sicodec.models.weights import save_weights

    weights = tmp_path / "tiny-sic.safetensors"
    save_weights(tiny_sic, weights, half=False)
    folder = tmp_path / "images"
    folder.mkdir()
    image.save(folder / "a.png")
    out = tmp_path / "report.json"
    script = Path(__file__).parents[2] / "scripts" / "cross_device.py"
    subprocess.run([sys.executable, str(script), str(folder), "--device", "cpu", "--model", str(weights),
                    "-o", str(out)], check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    assert report["decode_failures"] == [] and report["decodes"] == 2 * (4 + 1)
    assert report["max_abs_pixel_difference"] == 0 and report["files_differing_by_encoder_device"] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_files_made_on_cuda_decode_on_the_cpu_and_back(tiny_sic, image):
    for maker in ("cpu", "cuda"):
        data = sicodec.compress(image, model=tiny_sic, device=maker)
        for decoder in ("cpu", "cuda"):
            a = np.asarray(sicodec.decompress(data, model=tiny_sic, level=1, mode="mean", device=decoder), np.int16)
            b = np.asarray(sicodec.decompress(data, model=tiny_sic, level=1, mode="mean"), np.int16)
            assert np.abs(a - b).max() <= 1
    tiny_sic.place_transforms("cpu")
