"""Image <-> file: sizes, input kinds, fingerprints, and bit-exact determinism."""

import hashlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import sicodec
from sicodec.errors import ImageError, ModelMismatchError
from sicodec.models.base import reproducible_synthesis
from conftest import kodak, make_tiny_model


def _rt(model, image, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sicodec.SicodecNotice)
        return sicodec.decompress(sicodec.compress(image, model=model, **kw), model=model)


def _noise(rng, w, h, mode="RGB"):
    a = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
    return Image.fromarray(a, mode)


@pytest.mark.parametrize("size", [(1, 1), (1, 2000), (2000, 1), (65, 33), (33, 65), (64, 64), (130, 70)])
def test_any_size_round_trips_to_the_same_size(tiny_model, rng, size):
    out = _rt(tiny_model, _noise(rng, *size))
    assert out.size == size and out.mode == "RGB"


def test_a_file_path_decodes_like_its_bytes(tiny_model, rng, tmp_path):
    """compress takes an image or its path; decompress takes a .sic file's bytes or its path likewise."""
    data = sicodec.compress(_noise(rng, 40, 30), model=tiny_model)
    path = tmp_path / "x.sic"
    path.write_bytes(data)
    expected = np.asarray(sicodec.decompress(data, model=tiny_model))
    for given in (path, str(path)):
        assert np.array_equal(np.asarray(sicodec.decompress(given, model=tiny_model)), expected)
    with pytest.raises(sicodec.SicodecError, match="missing.sic: no such file"):
        sicodec.decompress(tmp_path / "missing.sic", model=tiny_model)


def test_reconstruction_matches_the_model_on_the_padded_image(tiny_model):
    im = Image.open(kodak(1))
    out = np.asarray(_rt(tiny_model, im), dtype=np.int16)
    # An untrained model reconstructs badly, but the pixels must come from decoding the latents.
    from sicodec.codec import _to_tensor

    x = _to_tensor(np.asarray(im.convert("RGB")), tiny_model.stride)
    with torch.no_grad():
        y = torch.round(tiny_model.g_a(x))
        ref = (tiny_model.g_s(y)[0, :, :512, :768].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(out - ref).max() <= 1


def test_grey_input_decodes_grey(tiny_model, rng):
    assert _rt(tiny_model, _noise(rng, 40, 30, "L")).mode == "L"
    assert _rt(tiny_model, Image.new("1", (20, 20))).mode == "L"


def test_sixteen_bit_grey_is_reduced_with_a_notice(tiny_model):
    im = Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16))
    with pytest.warns(sicodec.SicodecNotice, match="16-bit"):
        data = sicodec.compress(im, model=tiny_model)
    assert sicodec.decompress(data, model=tiny_model).mode == "L"


def test_palette_and_cmyk_are_converted_with_a_notice(tiny_model, rng):
    with pytest.warns(sicodec.SicodecNotice, match="palette"):
        sicodec.compress(_noise(rng, 30, 20).convert("P"), model=tiny_model)
    with pytest.warns(sicodec.SicodecNotice, match="CMYK"):
        sicodec.compress(_noise(rng, 30, 20).convert("CMYK"), model=tiny_model)


def test_alpha_dropped_when_opaque_refused_when_translucent(tiny_model, rng):
    im = _noise(rng, 30, 20).convert("RGBA")
    with pytest.warns(sicodec.SicodecNotice, match="alpha"):
        sicodec.compress(im, model=tiny_model)
    im.putpixel((0, 0), (1, 2, 3, 100))
    with pytest.raises(ImageError, match="transparency"):
        sicodec.compress(im, model=tiny_model)


def test_float_images_are_refused(tiny_model):
    with pytest.raises(ImageError, match="mode F"):
        sicodec.compress(Image.new("F", (10, 10)), model=tiny_model)


def test_exif_orientation_is_applied(tiny_model, rng, tmp_path):
    im = _noise(rng, 40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif)
    assert _rt(tiny_model, path).size == (20, 40)


def test_icc_profile_is_kept(tiny_model, rng, tmp_path):
    icc = b"fake-but-kept-icc-profile" * 10
    path = tmp_path / "icc.png"
    _noise(rng, 20, 20).save(path, icc_profile=icc)
    assert _rt(tiny_model, path).info["icc_profile"] == icc


def test_unreadable_inputs_are_image_errors(tiny_model, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for source in (bad, tmp_path / "missing.png"):
        with pytest.raises(ImageError):
            sicodec.compress(source, model=tiny_model)


def test_other_weights_are_refused_with_a_clear_message(tiny_model, rng):
    data = sicodec.compress(_noise(rng, 32, 32), model=tiny_model)
    with pytest.raises(ModelMismatchError, match="other weights"):
        sicodec.decompress(data, model=make_tiny_model(seed=1))


def test_file_names_the_model_and_decodes_from_a_weights_file(tiny_model, tiny_weights, rng):
    im = _noise(rng, 50, 40)
    data = sicodec.compress(im, model=tiny_weights)
    assert sicodec.decompress(data, model=tiny_weights).tobytes() == _rt(tiny_model, im).tobytes()


def test_many_random_images_round_trip_their_latents_exactly(tiny_model):
    """Decoded latents equal the encoder's, so decoding reproduces the encoder's own reconstruction."""
    gen = np.random.default_rng(99)
    for i in range(25):
        w, h = gen.integers(1, 150, 2)
        a = gen.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if i % 3 == 0:  # smooth images too, not only noise
            a = np.cumsum(a, axis=1).astype(np.uint8)
        x = sicodec.codec._to_tensor(a, tiny_model.stride)
        sections = tiny_model.compress_latents(x)
        with torch.no_grad(), reproducible_synthesis():
            want = tiny_model.g_s(torch.round(tiny_model.g_a(x)))
        got = tiny_model.decompress_latents(sections, tuple(x.shape[2:]))
        assert torch.equal(got, want)


_DECODE = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
sys.path.insert(0, sys.argv[2])
import sicodec
from conftest import make_tiny_model
m = sicodec.load_model(sys.argv[3]) if sys.argv[3] != "-" else make_tiny_model()
for path in sys.argv[4:]:
    print(hashlib.sha256(sicodec.decompress(open(path, "rb").read(), model=m).tobytes()).hexdigest())
"""


def test_same_pixels_with_one_or_two_threads_in_other_processes(tiny_model, tiny_weights, tmp_path):
    """Real and random images decode identically in this process, in others, with 1 and 2 threads,
    and with the model rebuilt in code or loaded from its saved weights."""
    gen = np.random.default_rng(5)
    images = [kodak(4), kodak(15)] + [Image.fromarray(gen.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8))
                                      for h, w in gen.integers(20, 200, (6, 2))]
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.sic")
        paths[-1].write_bytes(sicodec.compress(im, model=tiny_model))
    local = [hashlib.sha256(sicodec.decompress(p.read_bytes(), model=tiny_model).tobytes()).hexdigest() for p in paths]
    here = str(__import__("pathlib").Path(__file__).parent)
    for threads in (1, 2):
        for model in ("-", str(tiny_weights)):
            r = subprocess.run([sys.executable, "-c", _DECODE, str(threads), here, model, *map(str, paths)],
                               capture_output=True, text=True, check=True)
            assert r.stdout.split() == local, (threads, model)


def test_huge_latents_are_coded_exactly_not_clipped(rng):
    """A model whose latents are far outside every table still round-trips its latents exactly."""
    m = make_tiny_model(seed=3)
    with torch.no_grad():
        m.g_a[-1].weight.mul_(1e5)
    x = sicodec.codec._to_tensor(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), m.stride)
    with torch.no_grad():
        y = torch.round(m.g_a(x))
    assert y.abs().max() > 1e5
    sections = m.compress_latents(x)
    with torch.no_grad(), reproducible_synthesis():
        assert torch.equal(m.decompress_latents(sections, (64, 64)), m.g_s(y))


@pytest.mark.parametrize("setting", ["float64 default dtype", "medium float32 matmul precision", "flush denormals"])
def test_callers_float_settings_change_neither_files_nor_pixels(tiny_model, setting):
    """A program that sets float64 as torch's default dtype, lowers matmul precision or flushes denormals
    still writes the same files and decodes the same pixels (SIC and the hyperprior)."""
    from conftest import make_tiny_sic

    image = Image.open(kodak(4)).crop((0, 0, 200, 150))
    change, undo = {
        "float64 default dtype": (lambda: torch.set_default_dtype(torch.float64), lambda: torch.set_default_dtype(torch.float32)),
        "medium float32 matmul precision": (lambda: torch.set_float32_matmul_precision("medium"),
                                            lambda: torch.set_float32_matmul_precision("highest")),
        "flush denormals": (lambda: torch.set_flush_denormal(True), lambda: torch.set_flush_denormal(False)),
    }[setting]
    for model in (tiny_model, make_tiny_sic()):
        data = sicodec.compress(image, model=model)
        pixels = sicodec.decompress(data, model=model).tobytes()
        change()
        try:
            assert sicodec.compress(image, model=model) == data
            assert sicodec.decompress(data, model=model).tobytes() == pixels
        finally:
            undo()


def test_bpp_with_a_family_keeps_its_highest_installed_quality_that_fits(capsys, tmp_path):
    from sicodec.cli import main
    from sicodec.errors import ModelError

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((128, 128), Image.BICUBIC)
    members = [m["name"] for m in sicodec.list_models() if m["arch"] == "hyperprior" and m["installed"]]
    assert len(members) >= 3
    files = {name: sicodec.compress(image, model=name) for name in members}
    rates = [8 * len(files[name]) / 128**2 for name in members]
    assert rates == sorted(rates)  # the bisection's premise: rate grows with quality
    for i, name in enumerate(members):
        target = rates[i] if i + 1 == len(members) else (rates[i] + rates[i + 1]) / 2
        assert sicodec.compress(image, model="hyperprior", bpp=target) == files[name], name
    with pytest.raises(ModelError, match=f"no quality of hyperprior fits .*\\({members[0]} needs {rates[0]:.4f} bpp"):
        sicodec.compress(image, model="hyperprior", bpp=0.9 * rates[0])
    with pytest.raises(ModelError, match="not progressive"):
        sicodec.compress(image, model=members[-1], bpp=rates[-1])
    image.save(tmp_path / "a.png")
    assert main(["compress", str(tmp_path / "a.png"), "--model", "hyperprior", "--bpp", str(rates[1])]) == 0
    out, err = capsys.readouterr()
    assert f"model {members[1]}," in out and (tmp_path / "a.sic").read_bytes() == files[members[1]]
    (tmp_path / "a.sic").unlink()
    image.save(tmp_path / "b.png")
    assert main(["compress", str(tmp_path), "--model", "hyperprior", "--bpp", str(rates[1])]) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "b.sic").read_bytes() == files[members[1]]
    assert err.count(f"model {members[1]} is preliminary") == 1  # two files, one quality: its note once
