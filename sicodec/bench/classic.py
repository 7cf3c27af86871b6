"""Classic image codecs, reached through Pillow and its plugins, as baselines for the learned codecs.

Each codec is a `CodecSpec`: a name, the Pillow format it saves as, the fixed save options, a default quality
ladder and how to find its library. `encode` gives the bytes of a real file, `decode` reads such bytes back;
the benchmark (`sicodec.bench.run`) measures rate on those bytes and quality on the decoded pixels.

| name      | library (Pillow format)                 | settings                                              |
|-----------|-----------------------------------------|-------------------------------------------------------|
| jpeg-420  | libjpeg(-turbo) in Pillow (JPEG)        | 4:2:0, optimized Huffman tables, baseline             |
| jpeg-444  | libjpeg(-turbo) in Pillow (JPEG)        | 4:4:4, optimized Huffman tables, baseline             |
| webp      | libwebp in Pillow (WEBP)                | lossy, method 6 (slowest, best), 4:2:0 (WebP's only)  |
| avif      | libavif (Pillow built-in, else the      | 4:4:4, speed 6 (default), full range, encoder "auto"  |
|           | pillow-avif-plugin package) (AVIF)      |                                                       |
| jxl       | libjxl via pillow-jxl-plugin (JXL)      | VarDCT (lossy), effort 7                              |
| heic      | libheif + x265 via pillow-heif (HEIF)   | HEVC intra, 4:4:4, x265 preset slow, tune ssim; the   |
|           |                                         | usual stand-in for BPG (also HEVC intra with x265)    |

Plugins are imported and registered with Pillow only when a codec is used or checked, so importing this module
costs nothing. `available_codecs()` says which codecs work here and why the others do not (it imports the plugins
to find out). Threading is each library's default (libjxl, libavif and x265 use several threads).

The default ladders were chosen on the 24 Kodak images (768x512) so that the points span about 0.05 to
1.5 bpp where the codec can get there: JPEG bottoms out near 0.09 bpp (4:2:0) and 0.13 bpp (4:4:4) at
quality 1, JPEG XL near 0.14 bpp at quality 0 (its lowest); the others reach 0.05-0.1 bpp.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import SicodecError

__all__ = [
    "CodecSpec", "CODECS", "get_codec", "available_codecs", "require", "codec_versions", "encode", "decode",
    "encode_with", "decode_with",
]


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _pillow_version() -> str:
    import PIL

    return PIL.__version__


# --- per-library set-up: each returns None when usable, else the reason it is not ---------------------------


def _setup_jpeg() -> str | None:
    from PIL import features

    return None if features.check("jpg") else "this Pillow build has no JPEG support (libjpeg missing)"


def _setup_webp() -> str | None:
    from PIL import features

    return None if features.check("webp") else "this Pillow build has no WebP support (libwebp missing)"


def _setup_avif() -> str | None:
    from PIL import features

    if features.check("avif"):
        return None
    try:
        import pillow_avif  # noqa: F401  (registers the AVIF format with Pillow on import)
    except ImportError:
        return ("Pillow has no built-in AVIF support (Pillow >= 11.3 built with libavif) and the "
                "pillow-avif-plugin package is not installed")
    return None


def _setup_jxl() -> str | None:
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow on import)
    except ImportError:
        return "the pillow-jxl-plugin package is not installed (pip install pillow-jxl-plugin)"
    return None


def _setup_heif() -> str | None:
    try:
        import pillow_heif
    except ImportError:
        return "the pillow-heif package is not installed (pip install pillow-heif)"
    if not pillow_heif.libheif_info().get("HEIF"):
        return "pillow-heif is installed but its libheif has no HEVC encoder (x265)"
    if "HEIF" not in Image.SAVE:
        pillow_heif.register_heif_opener()
    return None


# --- library versions, recorded in every result ------------------------------------------------------------


def _versions_jpeg() -> dict:
    from PIL import features

    return {"pillow": _pillow_version(), "libjpeg": features.version("jpg"),
            "libjpeg_turbo": features.version("libjpeg_turbo")}


def _versions_webp() -> dict:
    from PIL import features

    return {"pillow": _pillow_version(), "libwebp": features.version("webp")}


def _versions_avif() -> dict:
    from PIL import features

    if features.check("avif"):
        from PIL import _avif

        out = {"pillow": _pillow_version(), "libavif": features.version("avif"), "backend": "Pillow built-in"}
        if hasattr(_avif, "codec_versions"):
            out["av1_codecs"] = _avif.codec_versions()
        return out
    return {"pillow": _pillow_version(), "pillow-avif-plugin": _dist_version("pillow-avif-plugin"),
            "backend": "pillow-avif-plugin"}


@lru_cache(maxsize=None)
def _bundled_libjxl_version() -> str | None:
    """pillow-jxl-plugin does not expose the libjxl it bundles; its binary names the crate it was built from."""
    try:
        import pillow_jxl.pillow_jxl as binary

        with open(binary.__file__, "rb") as f:
            m = re.search(rb"\+libjxl-(\d+\.\d+(?:\.\d+)?)", f.read())
        return m.group(1).decode() if m else None
    except (ImportError, AttributeError, OSError):
        return None


def _versions_jxl() -> dict:
    return {"pillow": _pillow_version(), "pillow-jxl-plugin": _dist_version("pillow-jxl-plugin"),
            "libjxl": _bundled_libjxl_version() or "bundled, version not exposed"}


def _versions_heif() -> dict:
    import pillow_heif

    info = pillow_heif.libheif_info()
    return {"pillow": _pillow_version(), "pillow-heif": pillow_heif.__version__, "libheif": info.get("libheif"),
            "encoder": info.get("HEIF"), "decoders": info.get("decoders")}


# --- the specs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecSpec:
    """One classic codec: how to save it with Pillow at a given quality, and where its library comes from.

    `options` are the save options besides `quality`; `qualities` is the default ladder (low to high quality);
    `quality_range` the values the library accepts.
    """

    name: str
    pil_format: str
    description: str
    options: dict
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    setup: Callable[[], str | None] = field(repr=False, compare=False)
    versions: Callable[[], dict] = field(repr=False, compare=False)

    def save_options(self, quality: int) -> dict:
        """A fresh dict of Pillow save options for `quality` (fresh: some plugins modify the dict they get)."""
        lo, hi = self.quality_range
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lo <= quality <= hi:
            raise SicodecError(f"{self.name}: quality must be an integer in [{lo}, {hi}], got {quality!r}")
        opts = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.options.items()}
        opts["quality"] = int(quality)
        return opts

    def settings(self) -> dict:
        """JSON-ready description of the settings, recorded in the results."""
        return {"codec": self.name, "pillow_format": self.pil_format, "save_options": self.save_options_template(),
                "quality_range": list(self.quality_range), "description": self.description}

    def save_options_template(self) -> dict:
        return {**{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.options.items()}, "quality": "<quality>"}


CODECS: dict[str, CodecSpec] = {
    spec.name: spec
    for spec in (
        CodecSpec("jpeg-420", "JPEG", "JPEG (libjpeg via Pillow), 4:2:0 chroma subsampling, optimized Huffman tables",
                  {"subsampling": 2, "optimize": True}, (1, 5, 10, 18, 28, 40, 55, 70, 80),
                  (1, 100), _setup_jpeg, _versions_jpeg),
        CodecSpec("jpeg-444", "JPEG", "JPEG (libjpeg via Pillow), 4:4:4 (no chroma subsampling), optimized Huffman tables",
                  {"subsampling": 0, "optimize": True}, (1, 5, 10, 18, 28, 40, 55, 70),
                  (1, 100), _setup_jpeg, _versions_jpeg),
        CodecSpec("webp", "WEBP", "WebP lossy (libwebp via Pillow), method 6",
                  {"method": 6, "lossless": False}, (0, 3, 10, 20, 35, 55, 72, 82, 85),
                  (0, 100), _setup_webp, _versions_webp),
        CodecSpec("avif", "AVIF", "AVIF (libavif + AV1 encoder via Pillow), 4:4:4, speed 6 (libavif default), full range",
                  {"subsampling": "4:4:4", "speed": 6, "range": "full", "codec": "auto"},
                  (0, 10, 20, 30, 40, 50, 60, 70, 75),
                  (0, 100), _setup_avif, _versions_avif),
        CodecSpec("jxl", "JXL", "JPEG XL (libjxl via pillow-jxl-plugin), lossy VarDCT, effort 7",
                  {"effort": 7, "lossless": False}, (0, 10, 20, 30, 45, 60, 72, 82, 86),
                  (0, 100), _setup_jxl, _versions_jxl),
        CodecSpec("heic", "HEIF", "HEIC: HEVC intra (libheif + x265 via pillow-heif), 4:4:4, x265 preset slow, "
                  "tune ssim; stand-in for BPG", {"chroma": "444", "enc_params": {"preset": "slow", "tune": "ssim"}},
                  (5, 10, 15, 20, 26, 32, 38, 44, 52),
                  (0, 100), _setup_heif, _versions_heif),
    )
}


def get_codec(name: str) -> CodecSpec:
    """The spec of codec `name`, or SicodecError listing the known names."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        raise SicodecError(f"unknown classic codec {name!r}; known: {', '.join(CODECS)}") from None


def available_codecs() -> dict[str, str | None]:
    """name -> None when the codec works here, else the reason it does not (a missing plugin or library)."""
    out = {}
    for name, spec in CODECS.items():
        try:
            out[name] = spec.setup()
        except Exception as e:  # a broken plugin must not take the whole list down
            out[name] = f"its plugin failed to load: {type(e).__name__}: {e}"
    return out


def require(name: str) -> CodecSpec:
    """The spec of `name`, with its plugin registered; SicodecError when it is unknown or unavailable here."""
    spec = get_codec(name)
    reason = spec.setup()
    if reason is not None:
        raise SicodecError(f"codec {name} is not available: {reason}")
    return spec


def codec_versions(name: str) -> dict:
    """Library versions behind codec `name` (it must be available)."""
    return require(name).versions()


def encode(name: str, pixels: np.ndarray, quality: int) -> bytes:
    """Encode a uint8 HxWx3 RGB array with codec `name` at `quality`; the bytes of a complete file."""
    return encode_with(require(name), pixels, quality)


def decode(name: str, data: bytes) -> np.ndarray:
    """Decode the bytes of a file made by codec `name`; a uint8 HxWx3 RGB array."""
    return decode_with(require(name), data)


def encode_with(spec: CodecSpec, pixels: np.ndarray, quality: int) -> bytes:
    """`encode` for a spec already set up by `require` (no set-up work, so it can be timed)."""
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3):
        raise SicodecError(f"encode needs a uint8 HxWx3 array, got {getattr(pixels, 'dtype', type(pixels).__name__)} "
                           f"of shape {getattr(pixels, 'shape', None)}")
    options = spec.save_options(quality)
    buf = io.BytesIO()
    try:
        Image.fromarray(pixels, "RGB").save(buf, format=spec.pil_format, **options)
    except (OSError, ValueError, RuntimeError) as e:
        raise SicodecError(f"{spec.name}: encoding at quality {quality} failed: {e}") from None
    return buf.getvalue()


def decode_with(spec: CodecSpec, data: bytes) -> np.ndarray:
    """`decode` for a spec already set up by `require`."""
    try:
        with Image.open(io.BytesIO(data), formats=[spec.pil_format]) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, RuntimeError) as e:
        raise SicodecError(f"{spec.name}: cannot decode {len(data)} bytes: {e}") from None
