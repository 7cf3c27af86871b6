"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import SicodecError


def check_output(path: str | os.PathLike, force: bool) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise SicodecError(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise SicodecError(f"{path}: is a folder")
    if not path.parent.is_dir():
        raise SicodecError(f"{path.parent}: no such folder")
    return path


def write_atomic(path: str | os.PathLike, writer) -> None:
    """Call writer(file_object) on a temporary file, fsync it and rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise SicodecError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path, data: bytes) -> None:
    write_atomic(path, lambda f: f.write(data))


def save_image_atomic(image, path) -> None:
    """Save a PIL image (format from the extension, PNG if unknown), keeping its ICC profile."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    kwargs = {"icc_profile": image.info["icc_profile"]} if image.info.get("icc_profile") else {}
    write_atomic(path, lambda f: image.save(f, format=fmt, **kwargs))
