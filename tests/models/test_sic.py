"""SIC: progressive levels, truncation, seeded synonym sampling, and the paper configuration."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sicodec
from sicodec.bitstream import parse
from sicodec.errors import SicodecError


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.integers(0, 9, (90, 150, 3)), axis=1) % 256
    return Image.fromarray(a.astype(np.uint8))


@pytest.fixture(scope="module")
def full(tiny_sic, photo):
    return sicodec.compress(photo, model=tiny_sic, seed=7)


def _px(image):
    return np.asarray(image, dtype=np.int16)


def test_one_section_per_level_and_sizes_grow(tiny_sic, full):
    f = parse(full)
    assert len(f.sections) == 1 + tiny_sic.slices == f.header.sections_total
    ends = f.section_offsets()
    assert all(a < b for a, b in zip(ends, ends[1:]))


def test_truncated_files_decode_like_the_full_file_at_that_level(tiny_sic, full):
    for k in range(1, tiny_sic.slices + 1):
        part = sicodec.truncate(full, k)
        assert len(parse(part).sections) == k + 1
        for mode in ("mean", "uniform"):
            a = sicodec.decompress(part, model=tiny_sic, mode=mode)
            b = sicodec.decompress(full, model=tiny_sic, level=k, mode=mode)
            assert a.tobytes() == b.tobytes()
        if k < tiny_sic.slices:
            with pytest.raises(SicodecError, match=f"levels 1..{k} only"):
                sicodec.decompress(part, model=tiny_sic, level=k + 1)


def test_compress_at_a_level_equals_truncating(tiny_sic, photo, full, tmp_path):
    assert sicodec.compress(photo, model=tiny_sic, seed=7, level=2) == sicodec.truncate(full, 2)
    (tmp_path / "full.sic").write_bytes(full)  # a path works as the bytes do
    assert sicodec.truncate(tmp_path / "full.sic", 2) == sicodec.truncate(full, 2)
    def samples(data):
        return [np.asarray(i).tobytes() for i in sicodec.decompress_samples(data, 2, model=tiny_sic)]

    assert samples(str(tmp_path / "full.sic")) == samples(full)


def test_bpp_target_picks_the_highest_level_that_fits(tiny_sic, photo, full):
    f = parse(full)
    px = photo.size[0] * photo.size[1]
    ends = f.section_offsets()
    target = (8 * ends[2] + 4) / px  # just above level 2's size (ends[0] is z alone)
    data = sicodec.compress(photo, model=tiny_sic, seed=7, bpp=target)
    assert data == sicodec.truncate(full, 2) and 8 * len(data) / px <= target
    with pytest.raises(SicodecError, match="no level fits"):
        sicodec.compress(photo, model=tiny_sic, bpp=0.001)


def test_mean_mode_is_deterministic_and_seeds_behave(tiny_sic, full):
    top = tiny_sic.slices
    assert sicodec.decompress(full, model=tiny_sic, level=1, mode="mean", seed=1).tobytes() == \
        sicodec.decompress(full, model=tiny_sic, level=1, mode="mean", seed=2).tobytes()
    for mode in ("uniform", "gaussian", "ancestral"):
        a = sicodec.decompress(full, model=tiny_sic, level=1, mode=mode, seed=3)
        assert a.tobytes() == sicodec.decompress(full, model=tiny_sic, level=1, mode=mode, seed=3).tobytes()
        assert a.tobytes() != sicodec.decompress(full, model=tiny_sic, level=1, mode=mode, seed=4).tobytes()
        assert sicodec.decompress(full, model=tiny_sic, level=top, mode=mode, seed=3).tobytes() == \
            sicodec.decompress(full, model=tiny_sic, level=top, mode=mode, seed=4).tobytes()
    # The seed stored in the file and the ancestral fill are the defaults.
    assert sicodec.decompress(full, model=tiny_sic, level=1).tobytes() == \
        sicodec.decompress(full, model=tiny_sic, level=1, seed=7, mode="ancestral").tobytes()


def test_samples_are_members_with_consecutive_seeds(tiny_sic, full):
    images = sicodec.decompress_samples(full, 3, model=tiny_sic, level=1, seed=10)
    assert [i.tobytes() for i in images] == [sicodec.decompress(full, model=tiny_sic, level=1, seed=s).tobytes() for s in (10, 11, 12)]
    assert len({i.tobytes() for i in images}) == 3


def test_transmitted_latents_are_decoded_exactly(tiny_sic, photo):
    x = sicodec.codec._to_tensor(np.asarray(photo), tiny_sic.stride)
    sections = tiny_sic.compress_latents(x)
    with torch.no_grad():
        y = torch.round(tiny_sic.g_a(x))
    from sicodec.models.base import reproducible_synthesis

    with torch.no_grad(), reproducible_synthesis():
        want = tiny_sic.g_s(y)
    assert torch.equal(tiny_sic.decompress_latents(sections, tuple(x.shape[2:]), mode="mean"), want)


def test_hyperprior_files_refuse_progressive_options(tiny_model, photo):
    data = sicodec.compress(photo, model=tiny_model)
    with pytest.raises(SicodecError, match="not progressive"):
        sicodec.decompress(data, model=tiny_model, level=1)
    with pytest.raises(SicodecError, match="not progressive"):
        sicodec.compress(photo, model=tiny_model, level=1)


def test_bad_options_are_clear_errors(tiny_sic, full):
    with pytest.raises(SicodecError, match="fill mode"):
        sicodec.decompress(full, model=tiny_sic, mode="median")
    with pytest.raises(SicodecError, match="level"):
        sicodec.decompress(full, model=tiny_sic, level=0)
    with pytest.raises(SicodecError):
        sicodec.truncate(full, 9)


def test_paper_configuration_builds_trains_a_step_and_round_trips():
    from sicodec.models.registry import SIC_PAPER_CONFIG, build_model
    from sicodec.entropy.ops import bits

    torch.manual_seed(0)
    m = build_model("sic", **SIC_PAPER_CONFIG)
    assert m.slices == 16 and m.widths == [32] * 16
    x = torch.rand(1, 3, 64, 64)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    out = m.train()(x)
    loss = bits(out["likelihoods"]) / (64 * 64) + 100 * torch.mean((out["x_hat"] - x) ** 2)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    m.eval().name = "sic-paper"
    image = Image.fromarray((np.random.default_rng(1).random((70, 50, 3)) * 255).astype(np.uint8))
    data = sicodec.compress(image, model=m)
    assert len(parse(data).sections) == 17
    assert sicodec.decompress(sicodec.truncate(data, 3), model=m).size == (50, 70)


def test_mean_fill_predicts_each_missing_slice_from_the_ones_before_it(tiny_sic, photo, monkeypatch):
    """`mean` fills slice k with the mean its slice network predicts from slices 1..k-1 (decoded or
    already filled), not with the hyper mean mu_h."""
    x = sicodec.codec._to_tensor(np.asarray(photo), tiny_sic.stride)
    sections = tiny_sic.compress_latents(x)
    seen = []
    monkeypatch.setattr(tiny_sic, "synthesis", lambda y: seen.append(y) or y)
    tiny_sic.decompress_latents(sections, tuple(x.shape[2:]), level=1, mode="mean")
    (y,) = seen
    S = tiny_sic.widths[0]
    with torch.no_grad():
        y_true = tiny_sic.g_a(x)
        mu_h, sigma_h = tiny_sic.hyper_params(torch.round(tiny_sic.side_latent(y_true)))
        assert torch.equal(y[:, :S], torch.round(y_true[:, :S]))
        slices = list(y.split(S, dim=1))
        for k in range(1, tiny_sic.slices):
            predicted, _ = tiny_sic.slice_gaussian(k, mu_h, sigma_h, slices)
            assert torch.allclose(slices[k], predicted, atol=1e-3)
            assert not torch.allclose(slices[k], mu_h[:, k * S:(k + 1) * S], atol=1e-2)


def test_ancestral_fill_samples_each_missing_slice_from_its_predicted_gaussian(tiny_sic, photo, monkeypatch):
    """`ancestral` fills slice k with round(mean + scale / 2 * N(0, 1)) from the Gaussian predicted from
    slices 1..k-1 (decoded or already sampled), drawing from a generator seeded with the seed."""
    from sicodec.entropy.exact import from_fixed
    from sicodec.models.sic import ANCESTRAL_TEMPERATURE

    x = sicodec.codec._to_tensor(np.asarray(photo), tiny_sic.stride)
    sections = tiny_sic.compress_latents(x)
    seen = []
    monkeypatch.setattr(tiny_sic, "synthesis", lambda y: seen.append(y) or y)
    tiny_sic.decompress_latents(sections, tuple(x.shape[2:]), level=1, mode="ancestral", seed=5)
    tiny_sic.decompress_latents(sections, tuple(x.shape[2:]), level=1, mode="mean")
    sampled, means = (list(y.split(tiny_sic.widths, dim=1)) for y in seen)
    with torch.no_grad():
        mu_h, sigma_h = tiny_sic._exact_hyper(torch.round(tiny_sic.side_latent(tiny_sic.g_a(x))))
    generator = torch.Generator().manual_seed(5)
    for k in range(1, tiny_sic.slices):
        mean, scale = (from_fixed(v) for v in tiny_sic._exact_gaussian(k, mu_h, sigma_h, sampled[:k]))
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float64)
        assert torch.equal(sampled[k], torch.round(mean + ANCESTRAL_TEMPERATURE * scale * noise))
        assert not torch.equal(sampled[k], torch.round(means[k]))


_DECODE_LEVEL_1 = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
sys.path.insert(0, sys.argv[2])
import sicodec
from conftest import make_tiny_sic
data = open(sys.argv[3], "rb").read()
for mode in ("mean", "uniform", "ancestral"):
    print(hashlib.sha256(sicodec.decompress(data, model=make_tiny_sic(), level=1, mode=mode).tobytes()).hexdigest())
"""


def test_filled_levels_decode_the_same_with_one_or_two_threads_in_other_processes(tiny_sic, full, tmp_path):
    """The predicted (`mean`) and sampled fills give the same pixels in other processes and thread counts."""
    path = tmp_path / "full.sic"
    path.write_bytes(full)
    local = [hashlib.sha256(sicodec.decompress(full, model=tiny_sic, level=1, mode=mode).tobytes()).hexdigest()
             for mode in ("mean", "uniform", "ancestral")]
    tests = str(Path(__file__).parents[1])
    for threads in (1, 2):
        r = subprocess.run([sys.executable, "-c", _DECODE_LEVEL_1, str(threads), tests, str(path)],
                           capture_output=True, text=True, check=True)
        assert r.stdout.split() == local, threads


@pytest.mark.parametrize("widths", [[4] * 8, [2, 6, 8, 8, 4, 4]])
def test_split_slices_keeps_the_model_where_the_dropped_hyper_inputs_are_unused(widths):
    """Slices split (evenly, or only some and unevenly): the transforms are copied, and where the old slice
    networks take nothing from the hyper values directly (only through the residual), every latent
    channel keeps its likelihood."""
    from conftest import make_tiny_sic

    old = make_tiny_sic(seed=3)
    with torch.no_grad():
        for net, S in zip(old.slice_params, old.widths):  # the inputs a split drops: other parts' hyper values
            net[0].weight[:, :2 * S] = 0
    new = old.split_slices(widths)
    assert new.widths == widths and new.slices == len(widths)
    assert new.config["slices"] == (8 if len(set(widths)) == 1 else widths)
    for part in ("g_a", "g_s", "h_a", "h_s", "entropy_z"):
        a, b = getattr(old, part).state_dict(), getattr(new, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lik_old, lik_new = (torch.cat([m(x)["likelihoods"][f"y{k + 1}"] for k in range(m.slices)], dim=1)
                            for m in (old, new))
    assert lik_old.shape == lik_new.shape and lik_old.std() > 0.01
    torch.testing.assert_close(lik_new, lik_old, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("widths, message", [([6, 10, 8, 8], "do not split the model's slices"),
                                             ([8, 8, 8], "add up to M=32"), ([8, 0, 8, 8, 8], "positive")])
def test_split_slices_refuses_widths_that_cut_across_old_slices(tiny_sic, widths, message):
    with pytest.raises(SicodecError, match=message):
        tiny_sic.split_slices(widths)


@pytest.mark.parametrize("slices, message", [(3, "do not split into 3 equal slices"), ([16, 16.0], "whole numbers"),
                                             ("4", "a count or a list"), ([], "add up to")])
def test_bad_slice_configs_are_clear_errors(slices, message):
    from sicodec.models.registry import build_model

    with pytest.raises(SicodecError, match=message):
        build_model("sic", M=32, slices=slices, N=16, hyper=16, param_hidden=16)


def test_uneven_slices_code_every_level_and_round_trip_through_a_file(photo, tmp_path):
    """Slices of widths 2, 6, 4, 4, 8, 8: the widths travel in the weights' config, and each level is a valid
    prefix whose decoded latents keep the transmitted channels exactly."""
    from sicodec.models.weights import load_weights, save_weights
    from conftest import make_tiny_sic

    save_weights(make_tiny_sic().split_slices([2, 6, 4, 4, 8, 8]), tmp_path / "w.safetensors", half=False)
    m, _ = load_weights(tmp_path / "w.safetensors")
    assert m.widths == [2, 6, 4, 4, 8, 8] and m.max_sections == 7
    data = sicodec.compress(photo, model=m)
    x = sicodec.codec._to_tensor(np.asarray(photo), m.stride)
    with torch.no_grad():
        y_int = torch.round(m.g_a(x))
    seen = []
    m.synthesis = lambda y: seen.append(y) or m.g_s(y)
    sizes = []
    for level in range(1, 7):
        part = sicodec.truncate(data, level)
        sizes.append(len(part))
        sicodec.decompress(part, model=m, mode="mean")
        c = m.offsets[level]
        assert torch.equal(seen[-1][:, :c], y_int[:, :c]), level
    assert sizes == sorted(sizes) and len(set(sizes)) == 6


def test_the_shipped_sic_weights_have_the_registered_shape():
    """`sicodec train sic` builds the registry's configuration: it must be the shape of the shipped weights."""
    from sicodec.models.registry import REGISTRY, build_model, find_weights
    from sicodec.models.weights import load_weights

    spec = REGISTRY["sic"]
    shipped, _ = load_weights(find_weights(spec))
    assert build_model("sic", **spec.config).config == shipped.config
    assert shipped.widths[:2] == [8, 8] and shipped.slices == 17


def test_split_script_writes_the_split_model_and_reports_bad_widths_in_one_line(tmp_path):
    from sicodec.models.weights import load_weights, save_weights
    from conftest import make_tiny_sic

    script = Path(__file__).parents[2] / "scripts" / "split_sic_slices.py"
    save_weights(make_tiny_sic(), tmp_path / "in.safetensors", half=False, trained_steps=7)
    for args, widths in ((["--widths", "4,4,8,8,8"], [4, 4, 8, 8, 8]), (["--factor", "2"], [4] * 8)):
        r = subprocess.run([sys.executable, str(script), str(tmp_path / "in.safetensors"), str(tmp_path / "out.safetensors"),
                            *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        m, meta = load_weights(tmp_path / "out.safetensors")
        assert m.widths == widths and meta["sicodec.trained_steps"] == "7"
    for args in (["--widths", "4,5,8,8,7"], ["--widths", "x"], ["--factor", "3"]):
        r = subprocess.run([sys.executable, str(script), str(tmp_path / "in.safetensors"), str(tmp_path / "bad.safetensors"),
                            *args], capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "bad.safetensors").exists()
