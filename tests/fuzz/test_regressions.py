"""Regression tests for what the fuzzer (tests/fuzz/sic_fuzz.py, scripts/fuzz_sic.py) found and for
the hardening around it: each test is a small, fixed instance of a failing case class."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import sicodec
from sicodec.bitstream import parse
from sicodec.errors import FormatError, LimitError, ModelError


@pytest.fixture
def small_limit():
    from sicodec.image import max_pixels, set_max_pixels

    before = max_pixels()
    set_max_pixels(1 << 18)
    yield 1 << 18
    set_max_pixels(before)


def _hp_file(tiny_model, size=(64, 64)):
    rng = np.random.default_rng(3)
    return sicodec.compress(Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)), model=tiny_model)


def _with_header(data: bytes, empty_sections: bool = False, **fields) -> bytes:
    f = parse(data)
    for k, v in fields.items():
        setattr(f.header, k, v)
    if empty_sections:
        f.sections = [b""] * len(f.sections)
    return f.to_bytes()


def test_a_thin_header_cannot_ask_for_64_times_its_pixels(tiny_model, small_limit, monkeypatch):
    """Found by the fuzzer: a header of 1 x 2**18 pixels (within a 2**18 limit) over empty sections
    decoded a 64 x 2**18 padded image (5 s, 300 MB with the tiny SIC model). The limit now applies to
    the padded size, checked before any decoding."""
    data = _with_header(_hp_file(tiny_model), empty_sections=True, width=1, height=small_limit)
    parse(data)  # the nominal size is within the limit
    monkeypatch.setattr(type(tiny_model), "decompress_latents", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(LimitError, match="padded"):
        sicodec.decompress(data, model=tiny_model)
    # the same size as a real image is refused by the encoder too
    with pytest.raises(LimitError, match="1x262144 pixels is coded as 64x262144"):
        sicodec.compress(Image.new("RGB", (1, small_limit)), model=tiny_model)


def test_a_header_that_lies_about_the_size_decodes_to_that_size_within_the_limit(tiny_model, small_limit):
    data = _with_header(_hp_file(tiny_model), empty_sections=True, width=300, height=200)
    image = sicodec.decompress(data, model=tiny_model)
    assert image.size == (300, 200) and image.mode == "RGB"


def test_the_model_name_in_a_header_is_never_a_path(tiny_model, tiny_weights, tmp_path, monkeypatch):
    """A file naming its model 'tiny.safetensors' made sicodec load that file from the current
    folder; names in files are now looked up in the registry only."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_weights, tmp_path / "tiny.safetensors")
    data = _with_header(_hp_file(tiny_model), model="tiny.safetensors")
    with pytest.raises(ModelError, match="unknown model 'tiny.safetensors'"):
        sicodec.decompress(data)
    assert sicodec.decompress(data, model=tmp_path / "tiny.safetensors").size == (64, 64)  # explicitly: fine


def test_non_finite_synthesis_output_decodes_to_defined_pixels(tiny_model, monkeypatch):
    """Corrupt sections can decode to latents of 2**20 and more, which overflow the synthesis to NaN;
    NaN cast to uint8 differs between CPUs, so such pixels are 0 everywhere."""
    data = _hp_file(tiny_model)
    nan = torch.full((1, 3, 64, 64), float("nan"))
    nan[:, :, :32] = float("inf")
    monkeypatch.setattr(type(tiny_model), "decompress_latents", lambda *a, **k: nan)
    pixels = np.asarray(sicodec.decompress(data, model=tiny_model))
    assert (pixels[:32] == 255).all() and (pixels[32:] == 0).all()


def test_escaped_values_beyond_what_the_encoder_writes_are_corrupt_data(monkeypatch):
    """The escape code can express values up to 2**47; the encoder refuses |v| >= 2**40, so the
    decoder refuses them too instead of handing the synthesis absurd latents."""
    from sicodec.entropy import coding

    table = coding.CodingTable(-2, np.array([10, 20, 10, 1, 1, 5]))
    ok = coding.encode(np.array([0, 1, 2**40 - 1, -(2**40) + 1]), np.zeros(4, np.int64), [table])
    assert coding.decode(ok, np.zeros(4, np.int64), [table]).tolist() == [0, 1, 2**40 - 1, -(2**40) + 1]
    monkeypatch.setattr(coding, "_check_range", lambda symbols: None)  # an encoder without the check
    bad = coding.encode(np.array([0, 2**44]), np.zeros(2, np.int64), [table])
    with pytest.raises(FormatError, match="out of the codable range"):
        coding.decode(bad, np.zeros(2, np.int64), [table])


@pytest.mark.parametrize("size", [(0, 64), (64, 0), (0, 0)])
def test_a_header_with_no_pixels_is_a_format_error(tiny_model, size):
    """Was an ImageError ('invalid image size'), as if an input image were at fault."""
    data = _with_header(_hp_file(tiny_model), width=size[0], height=size[1])
    with pytest.raises(FormatError, match=f"invalid image size {size[0]}x{size[1]} in header"):
        parse(data)


def test_a_level_the_model_or_file_does_not_have_is_a_specific_error(tiny_sic):
    """Was the bare SicodecError base class (from inside the SIC model); the fuzzer counted 3.6 % of
    its cases under it."""
    from sicodec.codec import truncate

    data = sicodec.compress(Image.new("RGB", (64, 64), (90, 120, 30)), model=tiny_sic)
    for level in (0, -1, 5):
        with pytest.raises(ModelError, match="level must be between 1 and 4 for sic-test"):
            sicodec.decompress(data, model=tiny_sic, level=level)
    with pytest.raises(FormatError, match="level 3 asked for, but the file holds levels 1..2 only"):
        sicodec.decompress(truncate(data, 2), model=tiny_sic, level=3)


def test_compress_refuses_a_level_or_bpp_target_before_coding_anything(tiny_sic, monkeypatch):
    """Was found out only after the whole image had been coded, and then as if the file lacked the level
    ("level 5 is not in this file")."""
    def not_called(*args, **kwargs):
        raise AssertionError("the image was coded")

    monkeypatch.setattr(tiny_sic, "compress_latents", not_called)
    image = Image.new("RGB", (64, 64), (90, 120, 30))
    for level in (0, 5):
        with pytest.raises(ModelError, match="level must be between 1 and 4 for sic-test"):
            sicodec.compress(image, model=tiny_sic, level=level)
    for bpp in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ModelError, match="bpp must be a positive number"):
            sicodec.compress(image, model=tiny_sic, bpp=bpp)


def test_a_quality_for_a_model_without_qualities_says_so():
    """`--model sic --quality 2` listed "qualities: None, None" (sic and sic-paper have none)."""
    from sicodec.models.registry import resolve

    with pytest.raises(ModelError, match=r"^hyperprior has no quality 9 \(qualities: 1, 2, 3, 4, 5, 6, 7, 8\)$"):
        resolve("hyperprior", 9)
    with pytest.raises(ModelError, match="^sic has no qualities: it is one model for all rates"):
        resolve("sic", 2)


def test_a_missing_quality_names_the_installed_ones(tmp_path, monkeypatch, tiny_weights):
    """`--quality 3` said only where it had looked; it now names the qualities that can be used."""
    import sicodec.models.registry as registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.delenv("SICODEC_WEIGHTS", raising=False)
    with pytest.raises(ModelError, match=r"^no weights for hyperprior-q3 are installed \(looked in: "):
        sicodec.compress(Image.new("RGB", (8, 8)), model="hyperprior", quality=3)
    for q in (2, 5):
        shutil.copy(tiny_weights, tmp_path / f"hyperprior-q{q}.safetensors")
    with pytest.raises(ModelError, match=r"^no weights for hyperprior-q3 are installed \(installed qualities: 2, 5; "):
        sicodec.compress(Image.new("RGB", (8, 8)), model="hyperprior", quality=3)
