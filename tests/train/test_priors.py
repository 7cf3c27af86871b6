"""Likelihood-only fitting of SIC slice networks (sicodec/train/priors.py, scripts/fit_slice_priors.py)."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sicodec.train.priors import bpp_per_slice, encode_latents, fit_slice_networks
from tests.conftest import make_tiny_sic


def test_the_estimated_slice_rates_match_the_sections_of_a_real_file(make_images):
    from sicodec.codec import _to_tensor
    from sicodec.image import prepare

    model = make_tiny_sic()
    folder = make_images("one", 1, 128, 192)
    latents = encode_latents(model, folder, model.offsets[-1])
    estimate = bpp_per_slice(model, latents, range(model.slices))
    x = _to_tensor(prepare(next(folder.iterdir())).pixels, 1)
    sections = model.compress_latents(x)
    for k, bpp in enumerate(estimate):
        real = len(sections[k + 1]) * 8 / (128 * 192)
        assert abs(real - bpp) <= 0.03 * bpp + 64 / (128 * 192), (k, real, bpp)


def test_fitting_lowers_the_chosen_slices_rate_and_changes_nothing_else(make_images):
    model = make_tiny_sic()
    before = copy.deepcopy(model.state_dict())
    train, = encode_latents(model, make_images("train", 6, 128, 128), model.offsets[2])
    start = bpp_per_slice(model, [train], [0, 1])
    fit_slice_networks(model, train, [0, 1], steps=60, batch=4, lr=3e-3, generator=torch.Generator().manual_seed(0))
    end = bpp_per_slice(model, [train], [0, 1])
    assert end[0] < start[0] and end[1] < start[1], (start, end)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("slice_params.0.", "slice_params.1.")) for k in changed), changed
    assert all(p.requires_grad for p in model.parameters())


def test_fit_script_writes_the_best_weights_and_reports_bad_slices_in_one_line(tmp_path, make_images):
    from sicodec.models.weights import load_weights, save_weights

    script = Path(__file__).parents[2] / "scripts" / "fit_slice_priors.py"
    save_weights(make_tiny_sic(), tmp_path / "in.safetensors", half=False, trained_steps=5, status="preliminary")
    train, val = make_images("train", 4, 128, 128), make_images("val", 2, 128, 128, seed=1)
    for i, (h, w) in enumerate(((128, 192), (192, 128))):  # validation images of other sizes (e.g. Kodak)
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(val / f"x{i}.png")
    base = [sys.executable, str(script), str(tmp_path / "in.safetensors"), str(train)]
    r = subprocess.run([*base, str(tmp_path / "out.safetensors"), "--slices", "2", "--val", str(val), "--crop", "128",
                        "--steps", "20", "--batch", "2", "--lr", "3e-3", "--val-every", "10"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model, meta = load_weights(tmp_path / "out.safetensors")
    assert meta["sicodec.trained_steps"] == "5" and meta["sicodec.status"] == "preliminary"
    reported = [float(line.split()[4]) for line in r.stdout.splitlines() if line.startswith("step") and "validation" in line]
    assert len(reported) == 3 and "best validation bpp" in r.stdout
    latents = encode_latents(model, val, model.offsets[2])
    assert abs(bpp_per_slice(model, latents, [1])[0] - min(reported)) < 1e-4
    for bad in ("0", "5", "x"):
        r = subprocess.run([*base, str(tmp_path / "bad.safetensors"), "--slices", bad, "--val", str(val)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "bad.safetensors").exists()
