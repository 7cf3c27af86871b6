"""Likelihood-only fitting of rate networks (sicodec/train/priors.py, scripts/fit_priors.py)."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sicodec.codec import _to_tensor, load_model
from sicodec.image import prepare
from sicodec.train.priors import bpp_per_part, encode_latents, fit_rate_networks
from conftest import make_tiny_model, make_tiny_sic

SCRIPT = Path(__file__).parents[2] / "scripts" / "fit_priors.py"


def _sections(model, folder):
    return model.compress_latents(_to_tensor(prepare(next(folder.iterdir())).pixels, 1))


@pytest.mark.parametrize("arch", ["sic", "hyperprior"])
def test_the_estimated_rate_of_each_part_matches_its_section_in_a_real_file(make_images, arch):
    # The hyperprior's trained scales: a random one's fall below the coder's smallest.
    model = make_tiny_sic() if arch == "sic" else load_model("hyperprior", quality=2)
    folder = make_images("one", 1, 128, 192)
    estimate = bpp_per_part(model, encode_latents(model, folder))
    names = ["z", *(f"slice {k + 1}" for k in range(model.slices))] if arch == "sic" else ["z", "y"]
    sections = _sections(model, folder)
    assert list(estimate) == names and len(sections) == len(names)
    for (name, bpp), section in zip(estimate.items(), sections):
        real = len(section) * 8 / (128 * 192)
        assert abs(real - bpp) <= 0.03 * bpp + 64 / (128 * 192), (name, real, bpp)


@pytest.mark.parametrize("what", ["sic slices", "sic hyper", "hyperprior"])
def test_fitting_lowers_the_rate_and_changes_only_the_rate_networks(make_images, what):
    model, slices, hyper, prefixes = {
        "sic slices": (make_tiny_sic(), [0, 1], False, ("slice_params.0.", "slice_params.1.")),
        "sic hyper": (make_tiny_sic(), None, True, ("h_a.", "h_s.", "entropy_z.")),
        "hyperprior": (make_tiny_model(), None, False, ("h_a.", "h_s.", "entropy_z.")),
    }[what]
    before = copy.deepcopy(model.state_dict())
    folder = make_images("train", 6, 128, 128)
    train, = encode_latents(model, folder)
    start = bpp_per_part(model, [train], slices)
    torch.manual_seed(0)
    fit_rate_networks(model, train, 60, slices, hyper, batch=4, lr=3e-3, generator=torch.Generator().manual_seed(0))
    end = bpp_per_part(model, [train], slices)
    assert sum(end.values()) < 0.97 * sum(start.values()), (start, end)
    if what == "sic slices":
        assert end["z"] == start["z"] and all(end[k] < start[k] for k in start if k != "z"), (start, end)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(prefixes) for k in changed), changed
    assert all(p.requires_grad for p in model.parameters())
    if what == "hyperprior":  # the same pixels, fewer bytes: the file really shrank
        old = make_tiny_model()
        x = _to_tensor(prepare(next(folder.iterdir())).pixels, 1)
        new_sections, old_sections = model.compress_latents(x), old.compress_latents(x)
        assert sum(map(len, new_sections)) < sum(map(len, old_sections))
        assert torch.equal(model.decompress_latents(new_sections, (128, 128)),
                           old.decompress_latents(old_sections, (128, 128)))


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_fit_script_writes_the_best_weights_and_reports_bad_slices_in_one_line(tmp_path, make_images):
    from sicodec.models.weights import load_weights, save_weights

    save_weights(make_tiny_sic(), tmp_path / "in.safetensors", half=False, trained_steps=5, status="preliminary")
    train, val = make_images("train", 4, 128, 128), make_images("val", 2, 128, 128, seed=1)
    for i, (h, w) in enumerate(((128, 192), (192, 128))):  # validation images of other sizes (e.g. Kodak)
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(val / f"x{i}.png")
    base = [tmp_path / "in.safetensors", train]
    r = _run(*base, tmp_path / "out.safetensors", "--slices", "2", "--val", val, "--crop", "128",
             "--steps", "20", "--batch", "2", "--lr", "3e-3", "--val-every", "10")
    assert r.returncode == 0, r.stderr
    model, meta = load_weights(tmp_path / "out.safetensors")
    assert meta["sicodec.trained_steps"] == "5" and meta["sicodec.status"] == "preliminary"
    reported = [float(line.split()[4]) for line in r.stdout.splitlines() if line.startswith("step") and "validation" in line]
    assert len(reported) == 3 and "best validation bpp" in r.stdout
    estimate = bpp_per_part(model, encode_latents(model, val), [1])
    assert abs(estimate["z"] + estimate["slice 2"] - min(reported)) < 1e-4
    for bad in (["--slices", "0"], ["--slices", "5"], ["--slices", "x"], []):
        r = _run(*base, tmp_path / "bad.safetensors", *bad, "--val", val)
        assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "bad.safetensors").exists()


def test_fit_script_fits_a_hyperprior_and_refuses_slices(tmp_path, make_images):
    from sicodec.models.weights import load_weights, save_weights

    save_weights(make_tiny_model(), tmp_path / "in.safetensors", half=False, trained_steps=7, status="preliminary")
    train, val = make_images("train", 4, 128, 128), make_images("val", 2, 128, 192, seed=1)
    r = _run(tmp_path / "in.safetensors", train, tmp_path / "out.safetensors", "--val", val, "--crop", "128",
             "--steps", "20", "--batch", "2", "--lr", "3e-3", "--val-every", "10")
    assert r.returncode == 0, r.stderr
    assert "(z " in r.stdout and ", y " in r.stdout
    reported = [float(line.split()[4]) for line in r.stdout.splitlines() if "validation bpp" in line]
    model, meta = load_weights(tmp_path / "out.safetensors")
    assert meta["sicodec.trained_steps"] == "7" and min(reported) < reported[0]
    assert abs(sum(bpp_per_part(model, encode_latents(model, val)).values()) - min(reported)) < 1e-4
    r = _run(tmp_path / "in.safetensors", train, tmp_path / "bad.safetensors", "--slices", "1", "--val", val)
    assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
