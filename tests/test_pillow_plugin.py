"""The Pillow plugin, through Pillow's own API: Image.open / load / seek / ImageSequence / save; and what
sicodec.compress does with a .sic file, which it reads through the plugin."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageSequence, UnidentifiedImageError

import sicodec  # noqa: F401  (importing sicodec registers the plugin)
from sicodec.errors import SicodecError


@pytest.fixture(scope="module")
def sic_dir(tmp_path_factory):
    from conftest import make_tiny_sic
    from sicodec.models.weights import save_weights

    folder = tmp_path_factory.mktemp("pillow-weights")
    save_weights(make_tiny_sic(), folder / "sic.safetensors", half=False)
    return folder


@pytest.fixture(autouse=True)
def tiny_sic_installed(sic_dir, monkeypatch):
    monkeypatch.setenv("SICODEC_WEIGHTS", str(sic_dir))  # registered `sic` is the tiny 4-level SIC


@pytest.fixture
def picture():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:72, 0:100]
    base = np.stack([x * 2.5, y * 3.5, (x + y) * 1.5], axis=2) + rng.normal(0, 10, (72, 100, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def pixels(im):
    return np.asarray(im)


def test_registered_with_pillow():
    assert Image.registered_extensions()[".sic"] == "SIC"
    assert Image.MIME["SIC"] == "image/x-sic"
    assert "SIC" in Image.OPEN and "SIC" in Image.SAVE


def test_save_and_open_every_level(tmp_path, picture):
    path = tmp_path / "x.sic"
    picture.save(path, model="sic", seed=4)
    with Image.open(path) as im:
        assert im.format == "SIC" and im.mode == "RGB" and im.size == (100, 72)
        assert im.n_frames == 4 and im.is_animated and im.tell() == 3
        assert im.info["sic_model"] == "sic" and im.info["sic_seed"] == 4 and im.info["sic_levels_total"] == 4
        im.load()
        assert im.info["sic_level"] == 4
        full = pixels(im).copy()
    with Image.open(path) as im:
        frames = [pixels(frame).copy() for frame in ImageSequence.Iterator(im)]
        assert len(frames) == 4 and im.info["sic_level"] == 4
        assert np.array_equal(frames[-1], full)
        assert not np.array_equal(frames[0], frames[-1])  # level 1 is another (coarser) picture
        im.seek(0)
        assert np.array_equal(pixels(im), frames[0])
        with pytest.raises(EOFError):
            im.seek(4)
    # Each frame is what decoding that level gives: Pillow and the library agree.
    data = path.read_bytes()
    assert np.array_equal(pixels(sicodec.decompress(data, level=2)), frames[1])


def test_save_options_level_and_file_objects(picture):
    buf = io.BytesIO()
    picture.save(buf, format="SIC", model="sic", level=2)
    buf.seek(0)
    with Image.open(buf) as im:
        assert im.n_frames == 2 and im.info["sic_levels_total"] == 4
        assert im.convert("RGB").size == (100, 72)


def test_save_passes_refine_to_the_encoder(tmp_path, picture):
    # Whether 3 steps find better latents depends on the weights; the file must be what the API
    # writes for the same request, and steps out of range must reach the encoder's check.
    picture.save(tmp_path / "refined.sic", model="hyperprior-q2", refine=3)
    assert (tmp_path / "refined.sic").read_bytes() == sicodec.compress(picture, model="hyperprior-q2", refine=3)
    with Image.open(tmp_path / "refined.sic") as im:
        assert im.size == picture.size
    with pytest.raises(SicodecError, match="refine steps"):
        picture.save(tmp_path / "bad.sic", model="hyperprior-q2", refine=10**9)
    assert not (tmp_path / "bad.sic").exists()


def test_hyperprior_files_have_one_frame(tmp_path, picture):
    path = tmp_path / "h.sic"
    picture.save(path, model="hyperprior-q4")
    with Image.open(path) as im:
        assert im.n_frames == 1 and not im.is_animated and im.tell() == 0
        assert im.info["sic_model"] == "hyperprior-q4"
        im.load()
        assert im.info["sic_level"] is None and im.getbbox() is not None
        with pytest.raises(EOFError):
            im.seek(1)


def test_grey_images_open_as_grey(tmp_path, picture):
    path = tmp_path / "g.sic"
    picture.convert("L").save(path, model="sic")
    with Image.open(path) as im:
        assert im.mode == "L"
        im.load()
        assert pixels(im).shape == (72, 100)


def test_errors(tmp_path, picture):
    # A failed save leaves no file behind (Pillow removes it).
    path = tmp_path / "bad.sic"
    with pytest.raises(SicodecError, match="not progressive"):
        picture.save(path, model="hyperprior-q4", level=1)
    assert not path.exists()
    # A damaged .sic file is refused with the reason; other formats are untouched.
    good = io.BytesIO()
    picture.save(good, format="SIC", model="sic")
    damaged = bytearray(good.getvalue())
    damaged[-3] ^= 0xFF
    with pytest.raises(UnidentifiedImageError, match="corrupted"):
        Image.open(io.BytesIO(bytes(damaged)))
    png = io.BytesIO()
    picture.save(png, format="PNG")
    assert Image.open(png).format == "PNG"
    # A file made with other weights for `sic` opens (its header is fine) but is refused on load.
    from conftest import make_tiny_sic

    m = make_tiny_sic(seed=2)
    m.name = "sic"
    foreign = io.BytesIO()
    picture.save(foreign, format="SIC", model=m)
    foreign.seek(0)
    with Image.open(foreign) as im:
        assert im.size == (100, 72)
        with pytest.raises(OSError, match="other weights"):
            im.load()


def test_compressing_a_sic_file_again_says_it_loses_quality_again(tmp_path, picture):
    path = tmp_path / "x.sic"
    picture.save(path, model="sic")
    with pytest.warns(sicodec.SicodecNotice, match="a second time"):
        sicodec.compress(path, model="sic")
    with warnings.catch_warnings():
        warnings.simplefilter("error", sicodec.SicodecNotice)
        sicodec.compress(picture, model="sic")  # an ordinary image: no notice
