"""Image <-> .sic bytes: model loading, padding, the container, fingerprints and colour handling.

image -> prepare (orientation, colour) -> padded tensor -> model latents -> sections -> file, and back.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .bitstream import Header, SicFile, parse
from .errors import FormatError, LimitError, ModelError, ModelMismatchError
from .fileio import read_file
from .image import max_pixels, prepare, to_pil
from .models.base import LatentCodecModel, float32_defaults
from .models.registry import REGISTRY, family_members, find_weights, resolve, weights_dirs
from .models.sic import DEFAULT_FILL_MODE

DEFAULT_MODEL = "sic"
FALLBACK_MODEL = "hyperprior"


@lru_cache(maxsize=8)
def _load_file(path: str, mtime: float) -> LatentCodecModel:
    from .models.weights import load_weights

    model, meta = load_weights(path)
    model.status = meta.get("sicodec.status", "untrained")
    model.trained_steps = int(meta.get("sicodec.trained_steps", "0"))
    _name(model, meta.get("sicodec.name", model.arch))
    return model


def _name(model: LatentCodecModel, name: str) -> None:
    """Give a loaded model its registry name and, when registered, its training trade-off."""
    model.name = name
    spec = REGISTRY.get(name)
    model.lmbda = spec.lmbda if spec is not None else None


def default_model() -> str:
    """The default model: SIC when its weights are installed, else the hyperprior."""
    return DEFAULT_MODEL if find_weights(REGISTRY[DEFAULT_MODEL]) is not None else FALLBACK_MODEL


def load_model(model: str | os.PathLike | LatentCodecModel | None = None, quality: int | None = None) -> LatentCodecModel:
    """A ready model: a registered name ('sic', 'hyperprior-q4'), a weights file, a model object,
    or None for `default_model()`."""
    if model is None:
        model = default_model()
    if isinstance(model, LatentCodecModel):
        return model.eval()
    path = Path(model)
    if path.suffix == ".safetensors" or path.is_file():
        if not path.is_file():
            raise ModelError(f"{path}: no such weights file")
        return _load_file(str(path.resolve()), path.stat().st_mtime)
    return _load_registered(str(model), quality)


def _load_registered(name: str, quality: int | None = None) -> LatentCodecModel:
    """A registered model by name (or family and quality), from its installed weights file."""
    spec = resolve(name, quality)
    found = find_weights(spec)
    if found is None:
        installed = [str(s.quality) for s in installed_qualities(spec.arch)] if spec.quality else []
        hint = f"installed qualities: {', '.join(installed)}; " if installed else ""
        raise ModelError(f"no weights for {spec.name} are installed ({hint}looked in: "
                         f"{', '.join(map(str, weights_dirs()))})")
    m = _load_file(str(found.resolve()), found.stat().st_mtime)
    _name(m, spec.name)
    return m


def installed_qualities(name) -> list:
    """The installed qualities of model family `name` ('hyperprior'), lowest rate first; [] for no family."""
    return [s for s in family_members(name) if s.quality is not None and find_weights(s) is not None]


def qualities_to_fit(model, quality: int | None, level: int | None, bpp: float | None) -> list:
    """The installed qualities `compress` chooses among for a bpp target, lowest rate first: those of a
    family named without a quality (model='hyperprior'); [] when `model` is one model."""
    if bpp is None or level is not None or quality is not None or not isinstance(model, str) or Path(model).is_file():
        return []
    return installed_qualities(model)


def list_models() -> list[dict]:
    """Registered models, with whether their weights are installed and their training status."""
    out = []
    for spec in REGISTRY.values():
        found = find_weights(spec)
        status = "not installed"
        if found is not None:
            status = _load_file(str(found.resolve()), found.stat().st_mtime).status
        out.append({"name": spec.name, "arch": spec.arch, "quality": spec.quality, "description": spec.description,
                    "installed": found is not None, "status": status})
    return out


def _to_pixels(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    """A decoded 1x3xH'xW' float image -> its top-left HxWx3 uint8 pixels, as files decode. Corrupt latents
    can overflow the synthesis to NaN, whose cast to uint8 differs between CPUs: they become 0."""
    pixels = (x_hat[0, :, :h, :w].nan_to_num(0.0).clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


def _to_tensor(pixels: np.ndarray, stride: int) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xH'xW' float in [0, 1], edges replicated up to a multiple of `stride`."""
    h, w = pixels.shape[:2]
    rows = np.minimum(np.arange(h + -h % stride), h - 1)
    cols = np.minimum(np.arange(w + -w % stride), w - 1)
    padded = pixels[rows][:, cols]
    return torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0


def compress(image, model: str | os.PathLike | LatentCodecModel | None = None, quality: int | None = None,
             level: int | None = None, bpp: float | None = None, seed: int = 0, device: str | None = None,
             refine: int = 0, **options) -> bytes:
    """Image (path or PIL image) -> .sic bytes.

    Progressive models (SIC): `level` keeps levels 1..level; `bpp` keeps the highest level whose
    real file size fits the target; `seed` is stored for the decoder's sampling. A family named without
    a quality (model='hyperprior') with `bpp`: the file of its highest installed quality that fits.
    `device` ('cuda') runs the analysis transform there (default: the CPU; a model object passed in
    stays where it is).
    `refine` > 0 (hyperprior models) spends that many optimisation steps per tile searching for latents
    that code the image better (slower encoding, smaller files for the same quality; see
    `sicodec.models.refine`).
    """
    if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
        raise ModelError(f"bpp must be a positive number, not {bpp}")
    if members := qualities_to_fit(model, quality, level, bpp):
        return _compress_to_fit(image, members, bpp, seed=seed, device=device, refine=refine, **options)
    m = load_model(model, quality)
    _place_transforms(m, model, device)
    if (level is not None or bpp is not None) and not m.progressive:
        raise ModelError(f"{m.name} is not progressive: --level needs a SIC model, and --bpp a SIC model or a "
                         "family without --quality (--model hyperprior)")
    _check_level(m, level)
    _check_seed(seed)
    if refine:
        check_refine(m, refine)
    img = prepare(image)
    h, w = img.pixels.shape[:2]
    check_padded_pixels(w, h, m.stride)
    if refine:
        options.update(refine=refine, valid=(h, w))
    x = _to_tensor(img.pixels, m.stride)
    with float32_defaults():
        sections = m.compress_latents(x, **options)
    header = Header(m.name, m.fingerprint(), m.tables_checksum(), w, h,
                    grey=img.grey, seed=seed, sections_total=len(sections), icc_profile=img.icc_profile)
    f = SicFile(header, sections)
    if bpp is not None:
        fits = [k for k, end in enumerate(f.section_offsets()[1:], start=1) if 8 * end / (w * h) <= bpp]
        if not fits:
            raise ModelError(f"no level fits {bpp} bpp (level 1 needs {8 * f.section_offsets()[1] / (w * h):.4f} bpp)")
        level = fits[-1] if level is None else min(level, fits[-1])
    data = f.to_bytes()
    return truncate(data, level) if level is not None else data


def _compress_to_fit(image, members: list, bpp: float, **options) -> bytes:
    """The file of the highest quality among `members` (lowest rate first) whose real size fits `bpp`.
    Rate grows with quality, so a bisection codes about log2(len(members)) of them."""
    lo, hi, best = 0, len(members) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = compress(image, members[mid].name, **options)
        h = parse(data).header
        rate = 8 * len(data) / (h.width * h.height)
        if rate <= bpp:
            best, lo = data, mid + 1
        elif mid == 0:
            raise ModelError(f"no quality of {members[0].arch} fits {bpp} bpp ({members[0].name} needs {rate:.4f} bpp)")
        else:
            hi = mid - 1
    return best


def check_padded_pixels(width: int, height: int, stride: int) -> None:
    """The pixel limit on the image as the model codes it (padded to a multiple of `stride` on each
    side): a thin image, 1 x N, costs 64 x N pixels of memory and time, so its header must not
    be able to ask for more than the limit allows."""
    pw, ph = width + -width % stride, height + -height % stride
    if pw * ph > max_pixels():
        raise LimitError(f"image of {width}x{height} pixels is coded as {pw}x{ph} (padded to a multiple of {stride}), "
                         f"which exceeds the limit of {max_pixels()} pixels (SICODEC_MAX_PIXELS)")


MAX_REFINE_STEPS = 2000


def check_refine(m: LatentCodecModel, steps: int) -> None:
    """Refuse a latent search the model cannot do, with a one-line reason."""
    if not m.refinable:
        raise ModelError(f"{m.name} cannot refine its latents: --refine applies to hyperprior models")
    if m.lmbda is None:
        raise ModelError(f"--refine needs the rate-distortion trade-off {m.name} was trained for; "
                         "it is known for registered models only")
    if not 0 <= steps <= MAX_REFINE_STEPS:
        raise ModelError(f"refine steps must be between 0 and {MAX_REFINE_STEPS}")


def _check_level(m: LatentCodecModel, level: int | None) -> None:
    """A level the model can write (checked before any work, whatever the file holds)."""
    if level is not None and not 1 <= level <= m.max_sections - 1:
        raise ModelError(f"level must be between 1 and {m.max_sections - 1} for {m.name}")


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**64:
        raise ModelError("seed must be between 0 and 2**64 - 1")


SicData = bytes | str | os.PathLike  # a .sic file: its bytes or its path (as `compress` takes an image's path)


def _file_bytes(data: SicData) -> bytes:
    """The bytes of a .sic file given either way."""
    return read_file(data) if isinstance(data, (str, os.PathLike)) else data


def truncate(data: SicData, level: int) -> bytes:
    """The prefix of a progressive file (bytes or path) that holds levels 1..level (a valid, smaller file)."""
    data = _file_bytes(data)
    f = parse(data)
    levels = len(f.sections) - 1
    if not 1 <= level <= levels:
        raise FormatError(f"level {level} is not in this file (it holds levels 1..{levels})")
    return data[: f.section_offsets()[level]]


def _place_transforms(m: LatentCodecModel, given, device: str | None) -> None:
    """Put m's transforms on `device`. A model loaded here is cached and shared by later calls, so
    without a device it goes back to the CPU; a model object the caller passed stays where it is."""
    if device is not None or not isinstance(given, LatentCodecModel):
        m.place_transforms(device)


def model_for(header: Header, model=None) -> LatentCodecModel:
    """The model to decode a file with, refusing one whose weights differ from the encoder's.

    Without `model`, the header's name is looked up in the registry only, never used as a path: a
    file must not make sicodec open files of its choosing."""
    m = _load_registered(header.model) if model is None else load_model(model)
    if m.fingerprint() != header.fingerprint:
        raise ModelMismatchError(
            f"file was made with other weights for {header.model} (file {header.fingerprint.hex()[:12]}, "
            f"model {m.fingerprint().hex()[:12]}); decode it with the model that made it")
    if m.tables_checksum() != header.tables_crc:
        raise ModelMismatchError("this machine derives other coding tables than the encoder did; the file cannot be decoded exactly here")
    return m


def decompress(data: SicData, model=None, level: int | None = None, mode: str | None = None, seed: int | None = None,
               device: str | None = None, **options) -> Image.Image:
    """.sic bytes (or a .sic file's path) -> PIL image (mode RGB, or L for grey sources), with the ICC
    profile attached.

    Progressive files: `level` (default: all levels present), `mode` of the untransmitted slices
    (`ancestral` by default, `uniform`, `gaussian` or `mean`) and `seed` (default: the one stored in
    the file). `device` ('cuda') runs the synthesis transform there (default as in `compress`).
    """
    f = parse(_file_bytes(data))
    m = model_for(f.header, model)
    _place_transforms(m, model, device)
    if m.progressive:
        seed = f.header.seed if seed is None else seed
        _check_seed(seed)
        options.update(level=level, mode=mode or DEFAULT_FILL_MODE, seed=seed)
    elif level is not None or mode is not None or seed is not None:
        raise ModelError(f"{f.header.model} files are not progressive: level, mode and seed do not apply")
    if len(f.sections) < m.min_sections:
        raise FormatError(f"file is truncated: it holds {len(f.sections)} of the {m.min_sections} sections needed")
    if f.header.sections_total > m.max_sections:
        raise FormatError(f"file declares {f.header.sections_total} sections; {m.name} writes at most {m.max_sections}")
    if m.progressive and level is not None:
        _check_level(m, level)
        if level > len(f.sections) - 1:
            raise FormatError(f"level {level} asked for, but the file holds levels 1..{len(f.sections) - 1} only")
    h, w, s = f.header.height, f.header.width, m.stride
    check_padded_pixels(w, h, s)
    with float32_defaults():
        x_hat = m.decompress_latents(f.sections, (h + -h % s, w + -w % s), **options)
    return to_pil(_to_pixels(x_hat, h, w), f.header.grey, f.header.icc_profile)


def decompress_samples(data: SicData, samples: int, model=None, seed: int | None = None,
                       **options) -> list[Image.Image]:
    """`samples` members of the reconstructed synonymous set: seeds seed, seed + 1, ..."""
    if samples < 1:
        raise ModelError("samples must be at least 1")
    data = _file_bytes(data)
    base = parse(data).header.seed if seed is None else seed
    return [decompress(data, model=model, seed=base + i, **options) for i in range(samples)]
