"""Reading images into what the codec codes (8-bit RGB), and the documented handling of other kinds.

| input                         | coded as | decoded as | notice |
|-------------------------------|----------|------------|--------|
| RGB, 8 bit                    | RGB      | RGB        | -      |
| L (grey), 1 (bilevel)         | grey RGB | L          | -      |
| I;16 grey (16 bit)            | grey RGB | L          | reduced to 8 bits |
| P (palette) without alpha     | RGB      | RGB        | converted |
| CMYK, YCbCr, LAB, HSV         | RGB      | RGB        | converted (a CMYK ICC profile is dropped) |
| RGBA, LA, PA, P with alpha    | RGB      | RGB/L      | alpha dropped when fully opaque; refused otherwise |
| I (32-bit int), F (float)     | refused  |            |        |
| .sic file (its decoded image) | RGB/grey | RGB/L      | coded a second time |

EXIF orientation is applied before coding; an ICC profile is kept and attached to the output.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, LimitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MAX_PIXELS = 2**27  # about 134 megapixels; override with SICODEC_MAX_PIXELS or set_max_pixels()
_max_pixels = int(os.environ.get("SICODEC_MAX_PIXELS", DEFAULT_MAX_PIXELS))


class SicodecNotice(UserWarning):
    """An input was converted (for example a palette image to RGB); the message says how."""


def max_pixels() -> int:
    return _max_pixels


def set_max_pixels(n: int) -> None:
    """Largest width * height that sicodec encodes or decodes (like Pillow's MAX_IMAGE_PIXELS)."""
    global _max_pixels
    _max_pixels = int(n)


def check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"invalid image size {width}x{height}")
    if width * height > _max_pixels:
        raise LimitError(f"image of {width}x{height} pixels exceeds the limit of {_max_pixels} pixels (SICODEC_MAX_PIXELS)")


@dataclass
class CodedImage:
    """An image ready for coding: HxWx3 uint8 pixels, whether it is grey, and its ICC profile."""

    pixels: np.ndarray
    grey: bool = False
    icc_profile: bytes | None = None


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """The files of `folder` with an image suffix, sorted; SicodecError if it is no folder or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{folder}: no images (no image files with suffix {', '.join(IMAGE_SUFFIXES)})")
    return files


def open_image(source, name: str = "<bytes>") -> Image.Image:
    """A PIL image from a path, the bytes of an image file (called `name` in errors) or an already open
    image; read errors become ImageError."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        path, fp = name, io.BytesIO(source)
    else:
        path = fp = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
            check_pixels(*im.size)
            im.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError) as e:
        raise ImageError(f"{path}: cannot read image ({str(e).replace(f' {fp!r}', '')})") from None
    return im


def _notice(msg: str) -> None:
    warnings.warn(msg, SicodecNotice, stacklevel=3)


def prepare(source) -> CodedImage:
    """Path or PIL image -> CodedImage, following the table in this module's docstring."""
    im = open_image(source)
    check_pixels(*im.size)
    if im.format == "SIC":  # opened through sicodec's Pillow plugin
        _notice("the input is a .sic file: its decoded image is coded again and loses quality a second time "
                "(`sicodec truncate` lowers a progressive file's level without re-encoding)")
    icc = im.info.get("icc_profile") or None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not stop coding; orientation stays as stored
        _notice("could not read the EXIF orientation; the image is coded as stored")
    mode = im.mode
    if mode in ("I", "F"):
        raise ImageError(f"images of mode {mode} (32-bit integer or float samples) are not supported; convert to 8 or 16 bits first")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        _notice("palette image converted to RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            raise ImageError("image has transparency, which sicodec does not code; flatten it onto a background first")
        _notice("fully opaque alpha channel dropped")
        im = im.convert("L" if mode.startswith("L") else "RGB")
        mode = im.mode
    if mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint32)
        im = Image.fromarray((a >> 8).astype(np.uint8), mode="L")
        _notice("16-bit samples reduced to 8 bits")
        mode = "L"
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode == "L":
        g = np.asarray(im, dtype=np.uint8)
        return CodedImage(np.repeat(g[:, :, None], 3, axis=2), grey=True, icc_profile=icc)
    if mode != "RGB":
        if mode == "CMYK" and icc:
            icc = None
            _notice("CMYK image converted to RGB; its CMYK ICC profile is dropped")
        else:
            _notice(f"{mode} image converted to RGB")
        im = im.convert("RGB")
    return CodedImage(np.asarray(im, dtype=np.uint8).copy(), grey=False, icc_profile=icc)


def to_pil(pixels: np.ndarray, grey: bool, icc_profile: bytes | None) -> Image.Image:
    """HxWx3 uint8 -> PIL image (mode L for grey sources), with the ICC profile attached."""
    im = Image.fromarray(pixels, "RGB")
    if grey:
        im = Image.fromarray(np.asarray(pixels, dtype=np.float32).mean(axis=2).round().astype(np.uint8), "L")
    if icc_profile:
        im.info["icc_profile"] = icc_profile
    return im
