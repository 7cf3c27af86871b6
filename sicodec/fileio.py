"""Files in and out: inputs read with a one-line error, outputs written to a temporary file beside the
target and renamed over it. The name "-" is stdin as an input and stdout as an output (never a terminal)."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

from .errors import SicodecError


STDIO = "-"


def is_stdio(path) -> bool:
    return str(path) == STDIO


def read_file(path: str | os.PathLike) -> bytes:
    """The bytes of the file at `path` (stdin for "-"), or a one-line error saying why they cannot be read."""
    if is_stdio(path):
        if sys.stdin is None or sys.stdin.isatty():  # reading would wait for typing
            raise SicodecError("-: stdin is a terminal; pipe or redirect a file into it (< FILE)")
        return sys.stdin.buffer.read()
    p = Path(path)
    if not p.is_file():
        raise SicodecError(f"{p}: no such file")
    try:
        return p.read_bytes()
    except OSError as e:
        raise SicodecError(f"{p}: cannot read ({e.strerror})") from None


def check_output(path: str | os.PathLike, force: bool, inputs=()) -> Path:
    """`path` as an output: refused if it exists (unless `force`), is a folder, has no folder, or is
    one of `inputs` (sicodec never writes over its input, even with --force). "-" is stdout, refused
    when it is a terminal."""
    path = Path(path)
    if is_stdio(path):
        if sys.stdout is None or sys.stdout.isatty():
            raise SicodecError("-: stdout is a terminal; redirect or pipe it (> FILE)")
        return path
    for src in inputs:
        if is_stdio(src):
            continue
        if path.exists() and Path(src).exists() and os.path.samefile(path, src):
            raise SicodecError(f"{path}: is the input file; sicodec never overwrites its input")
    if path.exists() and not force:
        raise SicodecError(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise SicodecError(f"{path}: is a folder")
    if not path.parent.is_dir():
        raise SicodecError(f"{path.parent}: no such folder")
    return path


def write_atomic(path: str | os.PathLike, writer, overwrite: bool = True) -> None:
    """Call writer(file_object) on a temporary file beside `path` (a hidden name, `.NAME.*.tmp`),
    fsync it, and rename it to `path`: a reader, a crash or a kill sees the old file or the complete
    new one, never a partial one. With overwrite=False an existing `path` (even one created by
    another process meanwhile) is kept and SicodecError raised. "-" writes to stdout."""
    if is_stdio(path):
        buf = io.BytesIO()  # whole, so that an error leaves nothing half written on stdout
        writer(buf)
        try:
            sys.stdout.flush()
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise
        except OSError as e:  # e.g. a full disk behind the redirection
            raise SicodecError(f"-: cannot write to stdout ({e.strerror or e})") from None
        return
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # a read-only or missing folder
        raise SicodecError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite or not _link(tmp, path):
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except FileExistsError:
        raise SicodecError(f"{path}: already exists (use --force to overwrite)") from None
    except OSError as e:
        raise SicodecError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link(tmp: str, path: Path) -> bool:
    """Hard-link tmp to path, failing if path exists (atomic no-clobber); False where the file system
    has no hard links (then the caller's earlier existence check is what protects `path`)."""
    if path.exists():
        raise FileExistsError(path)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible everywhere, and then not needed."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path, data: bytes, overwrite: bool = True) -> None:
    write_atomic(path, lambda f: f.write(data), overwrite)


# The formats `decompress` writes, with the extension it gives them and their save options: each holds a
# decoded 8-bit RGB or grey image at its size, the lossy ones near-losslessly (Pillow's JPEG default,
# quality 75 with 4:2:0 chroma, would lose a second time). Others are refused: GIF keeps 256 colours, ICO
# and ICNS resize, PDF re-encodes.
IMAGE_OUTPUTS = {"PNG": (".png", {}), "WEBP": (".webp", {"lossless": True}),
                 "JPEG": (".jpg", {"quality": 95, "subsampling": 0}),
                 "AVIF": (".avif", {"quality": 95, "subsampling": "4:4:4"}), "TIFF": (".tif", {}),
                 "BMP": (".bmp", {}), "PPM": (".ppm", {}), "TGA": (".tga", {}), "JPEG2000": (".jp2", {})}
IMAGE_EXTENSIONS = " ".join(ext for ext, _ in IMAGE_OUTPUTS.values())


def output_format(name: str) -> str:
    """The IMAGE_OUTPUTS format a `--format` value names, by format or extension (png, jpg, jpeg, tiff,
    jp2, ...), or a one-line error."""
    from PIL import Image

    fmt = Image.registered_extensions().get("." + name.lower().lstrip("."), name.upper())
    if fmt not in IMAGE_OUTPUTS:
        raise SicodecError(f"--format {name}: not an output format; choose one of "
                           f"{IMAGE_EXTENSIONS.replace('.', '')}")
    return fmt


def image_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format an image written to `path` gets: `fmt` (an IMAGE_OUTPUTS key) or else its extension's
    (PNG without one); a one-line error when it is not one of IMAGE_OUTPUTS or the two disagree. Checked
    before any decoding."""
    from PIL import Image

    suffix = Path(path).suffix.lower()
    named = Image.registered_extensions().get(suffix) if suffix else None
    if fmt and named and named != fmt:
        raise SicodecError(f"{path}: the extension says {named} but --format asks for {fmt}; "
                           f"name it {Path(path).with_suffix(IMAGE_OUTPUTS[fmt][0]).name}")
    fmt = fmt or (named if suffix else "PNG")
    if fmt not in IMAGE_OUTPUTS:
        kind = f"{fmt} cannot hold the decoded image as it is" if fmt else "unknown image extension"
        raise SicodecError(f"{path}: {kind}; write one of {IMAGE_EXTENSIONS}")
    return fmt


def check_sic_name(path: str | os.PathLike, command: str) -> None:
    """Refuse a .sic output named as another image format: out.png holding .sic bytes would fool the
    user and every image viewer. Other names (out.sic, out.bin, no extension) are kept as given."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt and fmt != "SIC":
        raise SicodecError(f"{path}: {command} writes a .sic file, not {fmt}; name it "
                           f"{path.with_suffix('.sic').name} (sicodec decompress writes images)")


def save_image_atomic(image, path, overwrite: bool = True, fmt: str | None = None) -> None:
    """Save a PIL image in the format of `image_format(path, fmt)`, keeping its ICC profile."""
    fmt = image_format(path, fmt)
    kwargs = dict(IMAGE_OUTPUTS[fmt][1])
    if image.info.get("icc_profile"):
        kwargs["icc_profile"] = image.info["icc_profile"]
    write_atomic(path, lambda f: image.save(f, format=fmt, **kwargs), overwrite)
