"""The work behind the web page, without HTTP: uploads, jobs, views of a level, the classic codecs at the same size.

A `Workspace` owns one temporary folder (made by `tempfile.mkdtemp`, removed by `close`); every file the page
produces lives in a job folder inside it, under a name the workspace builds itself. Requests name jobs by a random
id and images by a key that is looked up in the job's own table, so no request can reach any other file. Samples are
chosen by name from the fixed list of files shipped in `sicodec/samples/`.

Everything that can go wrong because of what a user sent is a `WebError` with an HTTP status and a one-line message.
"""

from __future__ import annotations

import io
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..bitstream import SIGNATURE, parse
from ..errors import FormatError, LimitError, ModelError, SicodecError
from ..image import SicodecNotice, prepare
from ..models.sic import DEFAULT_FILL_MODE, FILL_MODES

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
# Formats an uploaded image may have (Pillow format names); anything else is refused before decoding.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "PPM", "GIF", "AVIF")
CLASSIC_CODECS = {"jpeg-420": "JPEG", "webp": "WebP", "avif": "AVIF"}
MAX_SEED = 2**53 - 1  # what a JavaScript number holds exactly
_JOB_ID = re.compile(r"^[0-9a-f]{24}$")
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


class WebError(Exception):
    """A request the page cannot serve: `status` is the HTTP status, the message one line for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def status_of(error: SicodecError) -> int:
    """HTTP status for a library error: limits 413, everything else the user sent 422."""
    return 413 if isinstance(error, LimitError) else 422


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 2**20  # bytes of one upload (image or .sic)
    max_pixels: int = 2**24  # width * height of an uploaded image or .sic file (16.7 megapixels)
    max_jobs: int = 8  # jobs kept; the least recently used one is removed beyond that


def samples() -> dict[str, Path]:
    """The bundled sample images by file name (the only names a request may choose)."""
    return {p.name: p for p in sorted(SAMPLES_DIR.glob("*.png"))}


def _safe_stem(filename: str | None) -> str:
    stem = Path(filename or "").stem if filename else ""
    return _SAFE_STEM.sub("_", stem).strip("._")[:64] or "image"


def _float(value: float) -> float | None:
    """A finite float for JSON; None for inf/nan (identical images have infinite PSNR)."""
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass
class ModelChoice:
    """A model the page offers: `label` is shown and stored in files, `source` is what `load_model` gets."""

    label: str
    source: str
    description: str = ""
    _model: object = field(default=None, repr=False)

    def load(self):
        if self._model is None:
            from ..codec import load_model

            self._model = load_model(self.source)
        return self._model

    def describe(self) -> dict:
        m = self.load()
        return {"name": self.label, "progressive": bool(m.progressive),
                "levels": int(m.slices) if m.progressive else 1, "status": m.status,
                "trained_steps": int(m.trained_steps), "description": self.description}


def installed_models(models=None) -> list[ModelChoice]:
    """`models` (registered names or .safetensors paths) as choices; None: every installed registered model."""
    from ..codec import list_models, load_model

    if models is None:
        return [ModelChoice(m["name"], m["name"], m["description"]) for m in list_models() if m["installed"]]
    out = []
    for source in models:
        source = str(source)
        m = load_model(source)  # refuses unknown names and unreadable files now, not on the first request
        label = m.name if source.endswith(".safetensors") or Path(source).is_file() else source
        out.append(ModelChoice(label, source, "weights file" if label != source else ""))
    return out


@dataclass
class Job:
    """One image coded with one model (or one opened .sic file), and what the page computed for it."""

    id: str
    dir: Path
    kind: str  # "image" (an uploaded or sample image) or "sic" (an opened .sic file)
    model: ModelChoice
    data: bytes  # the whole .sic file: every level
    width: int
    height: int
    seed: int
    stem: str
    original: np.ndarray | None = None  # HxWx3 uint8, None for an opened .sic file
    notices: list[str] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)  # key -> PNG in self.dir
    views: dict[tuple, dict] = field(default_factory=dict)
    classic_sizes: dict[tuple[str, int], bytes] = field(default_factory=dict)  # (codec, quality) -> file
    classic_results: dict[tuple[str, int], dict] = field(default_factory=dict)  # (codec, target bytes) -> result
    used: float = field(default_factory=time.monotonic)
    offsets: list[int] = field(init=False)

    def __post_init__(self):
        self.offsets = parse(self.data).section_offsets()

    @property
    def progressive(self) -> bool:
        return bool(self.model.load().progressive)

    @property
    def levels(self) -> int:
        """Levels present in the file (1 for a model that is not progressive)."""
        return len(self.offsets) - 1 if self.progressive else 1

    def level_bytes(self, level: int) -> int:
        return self.offsets[level] if self.progressive else len(self.data)

    def bpp(self, size: int) -> float:
        return 8 * size / (self.width * self.height)

    def summary(self) -> dict:
        sizes = [{"level": k if self.progressive else None, "bytes": self.level_bytes(k),
                  "bpp": self.bpp(self.level_bytes(k))} for k in range(1, self.levels + 1)]
        h = parse(self.data).header
        return {"id": self.id, "kind": self.kind, "model": self.model.label, "progressive": self.progressive,
                "levels": self.levels, "levels_total": h.sections_total - 1 if self.progressive else 1,
                "width": self.width, "height": self.height, "seed": self.seed, "name": self.stem,
                "grey": h.grey, "sizes": sizes, "notices": self.notices,
                "original": f"/api/jobs/{self.id}/original.png" if self.original is not None else None}

    def add_image(self, key: str, pixels: np.ndarray) -> str:
        """Save pixels as PNG under a name made from `key` (built by this module, never from a request)."""
        if key not in self.images:
            path = self.dir / f"{key}.png"
            try:
                Image.fromarray(pixels).save(path, format="PNG", compress_level=1)
            except OSError:  # the job was removed meanwhile (more than max_jobs newer ones)
                raise WebError(404, "this result has expired; upload the image again") from None
            self.images[key] = path
        return f"/api/jobs/{self.id}/images/{key}.png"


class Workspace:
    """The jobs of one running page and their temporary folder."""

    def __init__(self, models=None, limits: Limits | None = None, temp_root: str | Path | None = None):
        """`models`: `ModelChoice`s, or what `installed_models` takes."""
        self.limits = limits or Limits()
        if not (models and all(isinstance(m, ModelChoice) for m in models)):
            models = installed_models(models)
        self.models = {c.label: c for c in models}
        if not self.models:
            raise ModelError("no model weights are installed; the page needs at least one model "
                             "(see `sicodec models`, or give a weights file with --model)")
        self.samples = samples()
        self.dir = Path(tempfile.mkdtemp(prefix="sicodec-web-", dir=temp_root))
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()
        self._model_lock = threading.Lock()  # one learned encode/decode at a time
        self._classic_lock = threading.Lock()  # the classic codecs search on their own
        self._lpips_note: str | None = None
        self._closing = threading.Event()

    def close(self) -> None:
        """Stop the work under way and remove the temporary folder and everything in it."""
        self._closing.set()
        with self._jobs_lock:
            self._jobs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- what the page shows before any upload --------------------------------------------------------------

    def default_model(self) -> str:
        from ..codec import default_model

        name = default_model()
        return name if name in self.models else next(iter(self.models))

    def info(self) -> dict:
        from ..bench.classic import available_codecs

        available = available_codecs()
        return {
            "models": [c.describe() for c in self.models.values()], "default_model": self.default_model(),
            "samples": list(self.samples), "modes": list(FILL_MODES),
            "default_mode": DEFAULT_FILL_MODE, "max_seed": MAX_SEED,
            "limits": {"max_upload_bytes": self.limits.max_upload_bytes, "max_pixels": self.limits.max_pixels},
            "classic": [{"name": n, "label": label, "available": available.get(n) is None, "reason": available.get(n)}
                        for n, label in CLASSIC_CODECS.items()],
        }

    # --- jobs -------------------------------------------------------------------------------------------------

    def _choice(self, model: str | None) -> ModelChoice:
        name = model or self.default_model()
        if name not in self.models:
            raise WebError(400, f"unknown model {name!r} (this page offers: {', '.join(self.models)})")
        return self.models[name]

    def _add(self, job: Job) -> Job:
        with self._jobs_lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.limits.max_jobs:
                _, old = self._jobs.popitem(last=False)
                shutil.rmtree(old.dir, ignore_errors=True)
        return job

    def _new_dir(self) -> tuple[str, Path]:
        job_id = secrets.token_hex(12)
        path = self.dir / job_id
        path.mkdir()
        return job_id, path

    def job(self, job_id: str) -> Job:
        with self._jobs_lock:
            job = self._jobs.get(job_id) if _JOB_ID.match(job_id or "") else None
            if job is None:
                raise WebError(404, "no such result (it may have expired: the page keeps the last "
                                    f"{self.limits.max_jobs}); upload the image again")
            self._jobs.move_to_end(job_id)
            job.used = time.monotonic()
            return job

    def create_job(self, data: bytes, model: str | None = None, seed: int = 0, filename: str | None = None) -> Job:
        """A job from uploaded bytes: a .sic file (by its signature) or an image of an allowed format."""
        if len(data) > self.limits.max_upload_bytes:
            raise WebError(413, f"upload of {len(data)} bytes exceeds the limit of {self.limits.max_upload_bytes} bytes")
        if not data:
            raise WebError(400, "the upload is empty: choose an image or a .sic file")
        if data.startswith(SIGNATURE[:4]):
            return self._open_sic(data, filename)
        return self._encode(self._read_image(data), model, seed, _safe_stem(filename))

    def create_sample_job(self, name: str, model: str | None = None, seed: int = 0) -> Job:
        path = self.samples.get(name)
        if path is None:
            raise WebError(404, f"no sample named {name!r} (samples: {', '.join(self.samples)})")
        return self._encode(self._read_image(path.read_bytes()), model, seed, _safe_stem(name))

    def _read_image(self, data: bytes) -> tuple[Image.Image, np.ndarray, list[str]]:
        try:
            im = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except UnidentifiedImageError:
            raise WebError(415, "not an image this page reads: upload a PNG, JPEG, WebP, AVIF, BMP, TIFF, PPM or "
                                "GIF image, or a .sic file") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise WebError(415, f"cannot read the image: {e}") from None
        w, h = im.size
        if w * h > self.limits.max_pixels:
            raise WebError(413, f"image of {w}x{h} pixels exceeds this page's limit of {self.limits.max_pixels} pixels")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SicodecNotice)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im.load()
                coded = prepare(im)
            except SicodecError:
                raise
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
                raise WebError(415, f"cannot read the image: {e}") from None
        notices = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SicodecNotice)))
        return im, coded.pixels, notices

    def _encode(self, image: tuple, model: str | None, seed: int, stem: str) -> Job:
        from ..codec import compress

        im, pixels, notices = image
        choice = self._choice(model)
        if not 0 <= seed <= MAX_SEED:
            raise WebError(400, f"seed must be between 0 and {MAX_SEED}")
        with self._model_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", SicodecNotice)  # already collected when the image was read
            data = compress(im, model=choice.load(), seed=seed)
        job_id, path = self._new_dir()
        h, w = pixels.shape[:2]
        job = Job(job_id, path, "image", choice, data, w, h, seed, stem, original=pixels, notices=notices)
        Image.fromarray(pixels).save(path / "original.png", format="PNG", compress_level=1)
        return self._add(job)

    def _open_sic(self, data: bytes, filename: str | None) -> Job:
        try:
            f = parse(data)
        except FormatError as e:
            raise WebError(422, f"not a valid .sic file: {e}") from None
        h = f.header
        if h.width * h.height > self.limits.max_pixels:
            raise WebError(413, f"file of {h.width}x{h.height} pixels exceeds this page's limit of "
                                f"{self.limits.max_pixels} pixels")
        choice = self.models.get(h.model)
        if choice is None:
            raise WebError(422, f"this file was made with model {h.model}, which this page does not have "
                                f"(it offers: {', '.join(self.models)})")
        from ..codec import model_for

        m = model_for(h, choice.load())  # ModelMismatchError when the weights differ
        if len(f.sections) < m.min_sections:
            raise WebError(422, f"not a valid .sic file: it is truncated ({len(f.sections)} of the "
                                f"{m.min_sections} sections needed)")
        job_id, path = self._new_dir()
        job = Job(job_id, path, "sic", choice, bytes(data), h.width, h.height, h.seed, _safe_stem(filename))
        return self._add(job)

    # --- what a job shows -------------------------------------------------------------------------------------

    def _check_level(self, job: Job, level: int | None) -> int:
        if level is None:
            return job.levels
        if not job.progressive:
            if level != 1:
                raise WebError(400, f"{job.model.label} is not progressive: it has one level")
            return 1
        if not 1 <= level <= job.levels:
            raise WebError(400, f"level {level} is not in this file (it holds levels 1..{job.levels})")
        return level

    def _lpips(self, a: np.ndarray, b: np.ndarray) -> tuple[float | None, str | None]:
        """LPIPS, or None and why not (weights missing); never a made-up number."""
        if self._lpips_note is not None:
            return None, self._lpips_note
        from .. import metrics

        try:
            return float(metrics.lpips(a, b)), None
        except ModelError as e:
            self._lpips_note = f"LPIPS weights are not available: {e}"
            return None, self._lpips_note

    def _scores(self, job: Job, pixels: np.ndarray) -> dict:
        from ..metrics import psnr

        if job.original is None:
            note = "no original: this is an opened .sic file"
            return {"psnr": None, "psnr_note": note, "lpips": None, "lpips_note": note}
        value = psnr(job.original, pixels)
        lp, lp_note = self._lpips(job.original, pixels)
        return {"psnr": _float(value), "psnr_note": "identical to the original" if math.isinf(value) else None,
                "lpips": lp, "lpips_note": lp_note}

    def view(self, job: Job, level: int | None = None, mode: str | None = None, seed: int | None = None) -> dict:
        """The reconstruction at `level` (all levels present by default), its size, bpp, PSNR and LPIPS."""
        from ..codec import decompress, truncate

        level = self._check_level(job, level)
        if job.progressive:
            mode = mode or DEFAULT_FILL_MODE
            if mode not in FILL_MODES:
                raise WebError(400, f"unknown fill mode {mode!r} (modes: {', '.join(FILL_MODES)})")
            seed = job.seed if seed is None else seed
            if not 0 <= seed <= MAX_SEED:
                raise WebError(400, f"seed must be between 0 and {MAX_SEED}")
            key = f"sic-level{level}-{mode}-seed{seed}"
        else:
            if mode is not None or seed is not None:
                raise WebError(400, f"{job.model.label} is not progressive: fill mode and seed do not apply")
            mode, seed, key = None, None, "sic"
        if key not in job.views:
            t = time.perf_counter()
            with self._model_lock:
                if job.progressive:
                    data = truncate(job.data, level)
                    image = decompress(data, model=job.model.load(), level=level, mode=mode, seed=seed)
                else:
                    data = job.data
                    image = decompress(data, model=job.model.load())
            seconds = time.perf_counter() - t
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
            job.views[key] = {"level": level, "levels": job.levels, "progressive": job.progressive, "mode": mode,
                              "seed": seed, "bytes": len(data), "bpp": job.bpp(len(data)),
                              "decode_seconds": round(seconds, 3), "image": job.add_image(key, pixels),
                              **self._scores(job, pixels)}
        return job.views[key]

    def classic(self, job: Job, level: int | None = None, cancelled=None) -> dict:
        """JPEG, WebP and AVIF at the size of the .sic file at `level`: for each, the quality whose file is the
        largest not above that size (found by bisection; the smallest the codec makes when none fits).

        `cancelled()` is asked between encodes (the page has moved on); the search then stops with a WebError."""
        def check() -> None:
            if self._closing.is_set() or (cancelled is not None and cancelled()):
                raise WebError(499, "the comparison was cancelled")

        level = self._check_level(job, level)
        target = job.level_bytes(level)
        out = {"level": level, "bytes": target, "bpp": job.bpp(target), "codecs": []}
        if job.original is None:
            out["note"] = "the classic codecs need the original image; an opened .sic file has none"
            return out
        from ..bench.classic import available_codecs

        available = available_codecs()
        for name, label in CLASSIC_CODECS.items():
            if available.get(name) is not None:
                out["codecs"].append({"name": name, "label": label, "error": available[name]})
                continue
            with self._classic_lock:
                if (name, target) not in job.classic_results:
                    job.classic_results[name, target] = self._match(job, name, label, target, check)
            out["codecs"].append(job.classic_results[name, target])
        return out

    def _match(self, job: Job, name: str, label: str, target: int, check) -> dict:
        from ..bench.classic import decode, encode, get_codec

        def size(q: int) -> int:
            if (name, q) not in job.classic_sizes:
                check()
                job.classic_sizes[name, q] = encode(name, job.original, q)
            return len(job.classic_sizes[name, q])

        lo, hi = get_codec(name).quality_range
        note = None
        if size(lo) > target:
            q = lo
            note = f"its smallest file (quality {lo}) is larger than the .sic file"
        elif size(hi) <= target:
            q = hi
        else:  # size(good) <= target < size(bad)
            good, bad = lo, hi
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if size(mid) <= target else (good, mid)
            q = good
        data = job.classic_sizes[name, q]
        pixels = decode(name, data)
        return {"name": name, "label": label, "quality": q, "bytes": len(data), "bpp": job.bpp(len(data)),
                "image": job.add_image(f"{name}-q{q}", pixels), "note": note, **self._scores(job, pixels)}

    def image_path(self, job: Job, key: str) -> Path:
        path = job.images.get(key)
        if path is None or not path.is_file():
            raise WebError(404, "no such image in this result")
        return path

    def download(self, job: Job, level: int | None = None, seed: int | None = None) -> tuple[bytes, str]:
        """The .sic file at `level`, with `seed` stored in it (the seed the page shows), and a file name."""
        from ..codec import truncate

        level = self._check_level(job, level)
        data = truncate(job.data, level) if job.progressive and level < job.levels else job.data
        if seed is not None and seed != job.seed:
            if not job.progressive:
                raise WebError(400, f"{job.model.label} is not progressive: the seed does not apply")
            if not 0 <= seed <= MAX_SEED:
                raise WebError(400, f"seed must be between 0 and {MAX_SEED}")
            f = parse(data)
            f.header.seed = seed
            data = f.to_bytes()
        suffix = f"-level{level}" if job.progressive else ""
        return data, f"{job.stem}-{job.model.label}{suffix}.sic"


__all__ = ["Workspace", "Job", "Limits", "WebError", "ModelChoice", "installed_models", "samples", "status_of"]
