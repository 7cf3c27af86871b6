"""Benchmark results in CompressAI's JSON layout, with per-image rows beside them.

    {
      "name": "webp",
      "description": "WebP lossy (libwebp via Pillow), method 6",
      "meta": {...},                               # settings, library versions, data set, date, ...
      "results": {                                 # one entry per rate point, averaged over the images
        "quality": [...],                          # or "level" / "lambda": what selects the point
        "bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...], "lpips": [...], "dists": [...],
        "fid": [...], "kid": [...], "kid_std": [...],  # optional; over all images of a point, not averaged
        "encoding_time": [...], "decoding_time": [...]
      },
      "per_image": [{"image": "kodim01.png", "point": 10, "bpp": ..., "psnr-rgb": ..., ...}, ...]
    }

"results" is what CompressAI's plotting tools read (every list of one length); "per_image" is an addition of
ours, kept outside "results" so those tools are not confused. Averages are plain means over images of the
per-image values (so PSNR is averaged in dB, as CompressAI does). Times are seconds per image. FID and KID are
data-set metrics (see `sicodec.metrics.fid`): one value per point, measured on the 256x256 patches of all images,
with no per-image counterpart in "per_image".
"""

from __future__ import annotations

import json
import math
import os
from numbers import Real
from pathlib import Path

from ..errors import SicodecError
from ..fileio import write_bytes_atomic

__all__ = [
    "POINT_KEYS", "PER_IMAGE_ONLY", "METRIC_KEYS", "DATASET_METRIC_KEYS", "METRIC_NAMES", "LOWER_IS_BETTER",
    "validate_results", "load_results", "save_results", "point_key_of", "atomic_write_bytes", "results_from_rows", "make_results",
]

POINT_KEYS = ("quality", "level", "lambda")
"""Keys that may name the rate points in "results" (what setting selected each point)."""

METRIC_NAMES = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb", "lpips": "lpips", "dists": "dists", "fid": "fid",
                "kid": "kid"}
"""Short metric names (CLI, function arguments) -> keys in "results"."""

METRIC_KEYS = ("psnr-rgb", "ms-ssim-rgb", "lpips", "dists")
"""Per-image metrics: measured on each image, averaged over the images of a point."""
DATASET_METRIC_KEYS = ("fid", "kid")
"""Data-set metrics: measured once per point over all its images (KID's spread over subsets goes in "kid_std")."""
LOWER_IS_BETTER = frozenset({"lpips", "dists", "fid", "kid"})
TIME_KEYS = ("encoding_time", "decoding_time")
_ORDER = ("bpp", *METRIC_KEYS, *DATASET_METRIC_KEYS, "kid_std", *TIME_KEYS)
PER_IMAGE_ONLY = frozenset({"point", "width", "height", "bytes"})
"""Numeric row fields that stay in "per_image" and are not averaged into "results"."""


def point_key_of(data: dict) -> str:
    """The key that names the rate points of a results dict ("quality", "level" or "lambda")."""
    return next(k for k in POINT_KEYS if k in data["results"])


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _check_range(where: str, key: str, values: list) -> None:
    checks = {
        "bpp": (lambda v: v > 0, "must be > 0"),
        "ms-ssim-rgb": (lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
        "lpips": (lambda v: v >= 0, "must be >= 0"),
        "dists": (lambda v: v >= 0, "must be >= 0"),
        "fid": (lambda v: v >= 0, "must be >= 0"),
        "kid_std": (lambda v: v >= 0, "must be >= 0"),
        "encoding_time": (lambda v: v >= 0, "must be >= 0"),
        "decoding_time": (lambda v: v >= 0, "must be >= 0"),
    }
    if key in checks:
        ok, what = checks[key]
        for i, v in enumerate(values):
            if not ok(v):
                raise SicodecError(f"{where}: results[{key!r}][{i}] = {v!r} {what}")


def validate_results(data, where: str = "results") -> dict:
    """Check that `data` has the results layout above; return it unchanged, or raise SicodecError saying what is wrong.

    Required: "name" (non-empty string), "description" (string), "results" (dict of lists of finite numbers, all of
    one non-zero length, with "bpp" and at least one of psnr-rgb, ms-ssim-rgb, lpips, dists, fid, kid; KID may
    be slightly negative, its estimator being unbiased). Optional: "meta"
    (dict), "per_image" (list of dicts, each with a numeric "point" and "bpp"; numeric fields finite).
    """
    if not isinstance(data, dict):
        raise SicodecError(f"{where}: expected a JSON object, got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SicodecError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    if not isinstance(data.get("description"), str):
        raise SicodecError(f"{where}: 'description' must be a string, got {data.get('description')!r}")
    if "meta" in data and not isinstance(data["meta"], dict):
        raise SicodecError(f"{where}: 'meta' must be an object, got {type(data['meta']).__name__}")
    res = data.get("results")
    if not isinstance(res, dict) or not res:
        raise SicodecError(f"{where}: 'results' must be a non-empty object of lists")
    if "bpp" not in res:
        raise SicodecError(f"{where}: 'results' has no 'bpp' list")
    if not any(k in res for k in (*METRIC_KEYS, *DATASET_METRIC_KEYS)):
        raise SicodecError(f"{where}: 'results' has no quality metric "
                           f"(one of {', '.join((*METRIC_KEYS, *DATASET_METRIC_KEYS))})")
    length = None
    for key, values in res.items():
        if not isinstance(values, list):
            raise SicodecError(f"{where}: results[{key!r}] must be a list, got {type(values).__name__}")
        if not values:
            raise SicodecError(f"{where}: results[{key!r}] is empty")
        for i, v in enumerate(values):
            if not _is_number(v) or not math.isfinite(v):
                raise SicodecError(f"{where}: results[{key!r}][{i}] = {v!r} is not a finite number")
        if length is None:
            length, first = len(values), key
        elif len(values) != length:
            raise SicodecError(f"{where}: results[{key!r}] has {len(values)} values but results[{first!r}] has {length}; "
                               "every list must have one value per rate point")
        _check_range(where, key, values)
    rows = data.get("per_image")
    if rows is not None:
        if not isinstance(rows, list):
            raise SicodecError(f"{where}: 'per_image' must be a list of objects, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise SicodecError(f"{where}: per_image[{i}] must be an object, got {type(row).__name__}")
            for key in ("point", "bpp"):
                if not _is_number(row.get(key)):
                    raise SicodecError(f"{where}: per_image[{i}] needs a numeric {key!r}, got {row.get(key)!r}")
            for key, v in row.items():
                if _is_number(v) and not math.isfinite(v):
                    raise SicodecError(f"{where}: per_image[{i}][{key!r}] = {v!r} is not finite")
    return data


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (see `sicodec.fileio`), creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)
    return path


def save_results(data: dict, path: str | os.PathLike) -> Path:
    """Validate `data` and write it as indented JSON to `path` atomically; returns the path."""
    validate_results(data, where=str(path))
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results JSON file; SicodecError when it is missing, not JSON or not in the layout."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SicodecError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SicodecError(f"{path}: cannot read results file: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SicodecError(f"{path}: not valid JSON ({e})") from None
    return validate_results(data, where=str(path))


def results_from_rows(rows: list[dict], point_key: str = "quality") -> dict:
    """Average per-image rows into the "results" lists, one entry per distinct row["point"] (sorted ascending).

    Each row is a dict with "point" (the quality, level or lambda that made it), "bpp", any of psnr-rgb,
    ms-ssim-rgb, lpips, dists, encoding_time, decoding_time, and optionally other fields. Every other numeric
    field is averaged too; non-numeric fields (for example "image") are ignored. All rows of a point must
    have the same numeric fields, and every point the same images. "width", "height" and "bytes" stay per image (not averaged). The point values
    go under `point_key` ("quality", "level" or "lambda").
    """
    if point_key not in POINT_KEYS:
        raise SicodecError(f"point_key must be one of {', '.join(POINT_KEYS)}, got {point_key!r}")
    if not rows:
        raise SicodecError("no rows to average: the benchmark produced no measurements")
    groups: dict = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not _is_number(row.get("point")) or not _is_number(row.get("bpp")):
            raise SicodecError(f"row {i} must be a dict with a numeric 'point' and 'bpp', got {row!r}")
        groups.setdefault(row["point"], []).append(row)
    keys = None
    for point, group in groups.items():
        for row in group:
            these = {k for k, v in row.items() if k not in PER_IMAGE_ONLY and _is_number(v)}
            if keys is None:
                keys = these
            elif these != keys:
                raise SicodecError(f"rows disagree on their measured fields at point {point!r}: "
                                   f"{sorted(these)} vs {sorted(keys)}")
    images = {p: sorted(str(r.get("image", "")) for r in g) for p, g in groups.items()}
    first_point = next(iter(images))
    for point, names in images.items():
        if names != images[first_point]:
            raise SicodecError(f"points {first_point!r} and {point!r} were measured on different images "
                               f"({len(images[first_point])} vs {len(names)} rows); averages would not compare")
    ordered = [k for k in _ORDER if k in keys] + sorted(keys - set(_ORDER))
    points = sorted(groups)
    out = {point_key: list(points)}
    for k in ordered:
        out[k] = [math.fsum(float(r[k]) for r in groups[p]) / len(groups[p]) for p in points]
    return out


def make_results(name: str, description: str, rows: list[dict], meta: dict | None = None,
                 point_key: str = "quality", point_metrics: dict[str, list[float]] | None = None) -> dict:
    """The full results dict (name, description, meta, averaged results, per-image rows), validated.

    `point_metrics`: lists measured per point rather than per image (FID, KID: see `sicodec.bench.fidkid`), one
    value per point in ascending point order; they join "results" after the averaged metrics.
    """
    results = results_from_rows(rows, point_key)
    for key, values in (point_metrics or {}).items():
        if key in results:
            raise SicodecError(f"{key!r} is both averaged over the rows and given per point")
        results[key] = [float(v) for v in values]
    order = [point_key, *_ORDER]
    results = {k: results[k] for k in sorted(results, key=lambda k: order.index(k) if k in order else len(order))}
    data = {"name": name, "description": description, "meta": dict(meta or {}),
            "results": results, "per_image": [dict(r) for r in rows]}
    return validate_results(data, where=f"results of {name}")
