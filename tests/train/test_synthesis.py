"""Fitting a hyperprior's g_s on rounded latents (sicodec/train/synthesis.py, fit_priors.py --synthesis)."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sicodec.codec import _to_pixels, _to_tensor
from sicodec.image import prepare
from sicodec.metrics.classic import psnr
from sicodec.train.priors import encode_latents
from sicodec.train.synthesis import fit_synthesis, synthesis_psnr
from conftest import make_tiny_model, make_tiny_sic

SCRIPT = Path(__file__).parents[2] / "scripts" / "fit_priors.py"


def _file_psnr(model, path):
    """The bytes a file holds for the image at `path`, and the PSNR of its decoded pixels."""
    pixels = prepare(path).pixels
    sections = model.compress_latents(_to_tensor(pixels, model.stride))
    decoded = _to_pixels(model.decompress_latents(sections, pixels.shape[:2]), *pixels.shape[:2])
    return sections, psnr(decoded, pixels)


def test_fitting_raises_the_psnr_of_real_files_keeps_their_bytes_and_changes_only_g_s(make_images):
    model = make_tiny_model()
    before = copy.deepcopy(model.state_dict())
    folder = make_images("train", 4, 128, 128)
    first = sorted(folder.iterdir())[0]
    old_sections, old_psnr = _file_psnr(model, first)
    train, = encode_latents(model, folder, keep_images=True)
    assert train.x.dtype == torch.uint8 and train.x.shape == (4, 3, 128, 128)
    assert abs(synthesis_psnr(model, [train.take([0])]) - old_psnr) < 0.01  # it measures what files decode to
    start = synthesis_psnr(model, [train])
    fit_synthesis(model, train, 40, batch=4, lr=3e-3, generator=torch.Generator().manual_seed(0))
    assert synthesis_psnr(model, [train]) > start + 1.0
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("g_s.") for k in changed), changed
    assert all(p.requires_grad for p in model.parameters())
    new_sections, new_psnr = _file_psnr(model, first)
    assert new_sections == old_sections and new_psnr > old_psnr + 1.0


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("arch", ["hyperprior", "sic"])
def test_fit_script_writes_the_best_synthesis_and_refuses_sic(tmp_path, make_images, arch):
    from sicodec.models.weights import load_weights, save_weights

    save_weights(make_tiny_model() if arch == "hyperprior" else make_tiny_sic(), tmp_path / "in.safetensors",
                 half=False, trained_steps=3, status="preliminary")
    train, val = make_images("train", 4, 128, 128), make_images("val", 2, 128, 192, seed=1)
    r = _run(tmp_path / "in.safetensors", train, tmp_path / "out.safetensors", "--synthesis", "--val", val,
             "--crop", "128", "--steps", "20", "--batch", "2", "--lr", "3e-3", "--val-every", "10")
    if arch == "sic":
        assert r.returncode != 0 and r.stderr == "error: --synthesis applies to hyperprior models only (not sic)\n"
        assert not (tmp_path / "out.safetensors").exists()
        return
    assert r.returncode == 0, r.stderr
    reported = [float(line.split()[4]) for line in r.stdout.splitlines() if line.startswith("step") and "validation" in line]
    assert len(reported) == 3 and max(reported) > reported[0], r.stdout
    model, meta = load_weights(tmp_path / "out.safetensors")
    assert meta["sicodec.trained_steps"] == "3"
    assert abs(synthesis_psnr(model, encode_latents(model, val, keep_images=True)) - max(reported)) < 1e-3
