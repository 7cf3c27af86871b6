import sys

import numpy as np
import pytest

from sicodec.bench import classic
from sicodec.errors import SicodecError


def test_available_codecs_names_every_codec():
    avail = classic.available_codecs()
    assert list(avail) == list(classic.CODECS)
    assert all(v is None or (isinstance(v, str) and v) for v in avail.values())
    # JPEG and WebP come with every usual Pillow wheel
    assert avail["jpeg-420"] is None and avail["jpeg-444"] is None and avail["webp"] is None


@pytest.mark.parametrize("name, module", [("jxl", "pillow_jxl"), ("heic", "pillow_heif")])
def test_missing_plugin_is_reported_unavailable(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    reason = classic.available_codecs()[name]
    assert reason and "not installed" in reason and module.replace("_", "-") in reason
    with pytest.raises(SicodecError, match=f"codec {name} is not available: .*not installed"):
        classic.require(name)
    with pytest.raises(SicodecError, match="not available"):
        classic.encode(name, np.zeros((8, 8, 3), np.uint8), 50)


def test_avif_without_builtin_support_or_plugin_is_unavailable(monkeypatch):
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda f: False if f == "avif" else real(f))
    monkeypatch.setitem(sys.modules, "pillow_avif", None)
    assert "pillow-avif-plugin" in classic.available_codecs()["avif"]


def test_a_broken_plugin_does_not_break_the_list(monkeypatch):
    def boom():
        raise RuntimeError("bad build")

    spec = classic.CODECS["webp"]
    monkeypatch.setitem(classic.CODECS, "webp", classic.CodecSpec(
        spec.name, spec.pil_format, spec.description, spec.options, spec.qualities, spec.quality_range,
        boom, spec.versions))
    assert "RuntimeError: bad build" in classic.available_codecs()["webp"]


def test_unknown_codec_and_bad_quality():
    with pytest.raises(SicodecError, match="unknown classic codec 'png'.*jpeg-420"):
        classic.get_codec("png")
    with pytest.raises(SicodecError, match=r"quality must be an integer in \[1, 100\]"):
        classic.encode("jpeg-420", np.zeros((8, 8, 3), np.uint8), 0)
    with pytest.raises(SicodecError, match="uint8 HxWx3"):
        classic.encode("jpeg-420", np.zeros((8, 8), np.uint8), 50)


@pytest.mark.parametrize("name", list(classic.CODECS))
def test_round_trip_and_settings(name, rng):
    reason = classic.available_codecs()[name]
    if reason:
        pytest.skip(reason)
    spec = classic.CODECS[name]
    lo, hi = spec.quality_range
    assert list(spec.qualities) == sorted(set(spec.qualities)) and lo <= spec.qualities[0] and spec.qualities[-1] <= hi
    y, x = np.mgrid[0:40, 0:56]
    img = np.clip(np.stack([x * 4, y * 5, (x + y) * 2], -1) + rng.normal(0, 3, (40, 56, 3)), 0, 255).astype(np.uint8)
    data = classic.encode(name, img, spec.qualities[-1])
    out = classic.decode(name, data)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.mean(np.abs(out.astype(int) - img)) < 12
    versions = classic.codec_versions(name)
    assert versions["pillow"] and all(v for v in versions.values())
    assert spec.settings()["save_options"]["quality"] == "<quality>"
    with pytest.raises(SicodecError, match="cannot decode"):
        classic.decode(name, data[: len(data) // 3])
