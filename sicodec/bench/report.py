"""`sicodec report`: docs/results.md regenerated from a folder of results JSON files.

The page holds, for one data set: the rate-quality plot of every result beside the published
reference curves, BD-rate tables against JPEG, WebP and AVIF (and the published hyperprior), one
table of points per codec, and a visual strip: the same crop of one image from every codec at the
point nearest a target bpp, and from every level of a progressive model.
"""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import SicodecError
from ..fileio import write_bytes_atomic
from .bdrate import bd_rate
from .references import list_references, load_reference
from .results import DATASET_METRIC_KEYS, METRIC_KEYS, load_results, point_key_of

ANCHORS = ("jpeg-420", "webp", "avif")
BD_METRICS = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb", "lpips": "lpips", "dists": "dists"}
_COLUMN_NAMES = {"psnr-rgb": "PSNR dB", "ms-ssim-rgb": "MS-SSIM", "lpips": "LPIPS", "dists": "DISTS",
                 "fid": "FID", "kid": "KID"}


def load_folder(folder: str | os.PathLike) -> list[dict]:
    """Every results JSON in `folder`: classic codecs first, then learned models, each by name."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise SicodecError(f"{folder}: no results JSON files")
    results = [load_results(f) for f in files]
    return sorted(results, key=lambda r: (not is_classic(r), r["name"]))


def is_classic(r: dict) -> bool:
    return "codec" in r.get("meta", {})


def bd_table(results: list[dict], anchors: list[dict], metric: str) -> list[list[str]]:
    """Rows [name, BD-rate vs each anchor] in percent; 'n/a' where a curve lacks the metric or the
    curves do not overlap (negative: fewer bits for the same quality)."""
    rows = []
    for r in results:
        cells = [r["name"]]
        for a in anchors:
            if a is r:
                cells.append("-")
                continue
            try:
                cells.append(f"{bd_rate(a, r, metric):+.1f} %")
            except SicodecError:
                cells.append("n/a")
        rows.append(cells)
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def points_table(r: dict) -> str:
    res = r["results"]
    key = point_key_of(r)
    metrics = [k for k in (*METRIC_KEYS, *DATASET_METRIC_KEYS) if k in res]
    header = [key, "bpp", *(_COLUMN_NAMES[m] for m in metrics), "encode s", "decode s"]
    rows = []
    for i in range(len(res["bpp"])):
        rows.append([str(res[key][i]), f"{res['bpp'][i]:.4f}", *(f"{res[m][i]:.4f}" for m in metrics),
                     f"{res['encoding_time'][i]:.3f}", f"{res['decoding_time'][i]:.3f}"])
    return markdown_table(header, rows)


# ---- the visual strip -------------------------------------------------------------------------

def _learned_model(r: dict, point):
    from .. import codec
    from ..models.registry import REGISTRY

    for name in r.get("meta", {}).get("models") or [r["name"]]:
        spec = REGISTRY.get(name)
        if spec is None or spec.quality in (None, point):
            return codec.load_model(name)
    return codec.load_model(r["name"], point)


def reconstruct(r: dict, point, path: Path) -> np.ndarray:
    """The decoded pixels of image `path` at `point` of results `r` (re-encoded now, deterministically)."""
    from .. import codec
    from ..image import prepare
    from . import classic

    pixels = prepare(path).pixels
    if is_classic(r):
        name = r["meta"]["codec"]["codec"]
        return classic.decode(name, classic.encode(name, pixels, int(point)))
    model = _learned_model(r, point)
    if point_key_of(r) == "level":
        data = codec.compress(path, model=model, level=int(point))
        image = codec.decompress(data, model=model, mode=r["meta"].get("mode") or "mean")
    else:
        image = codec.decompress(codec.compress(path, model=model), model=model)
    return np.asarray(image.convert("RGB"))


def strip_entries(results: list[dict], image: str, target_bpp: float) -> list[tuple[dict, object, float]]:
    """(results, point, bpp of that image) to show: per codec the point nearest `target_bpp` on
    `image`, and every level of progressive models."""
    entries = []
    for r in results:
        rows = [row for row in r.get("per_image", []) if row["image"] == image]
        if not rows:
            continue
        if point_key_of(r) == "level":
            entries += [(r, row["point"], row["bpp"]) for row in sorted(rows, key=lambda row: row["point"])]
        else:
            row = min(rows, key=lambda row: abs(row["bpp"] - target_bpp))
            entries.append((r, row["point"], row["bpp"]))
    return entries


def draw_strip(results: list[dict], image_path: Path, out: Path, target_bpp: float, box: tuple[int, int, int]) -> Path:
    """A PNG grid: the original crop, then each entry's crop, titled with codec, point and bpp."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from ..image import prepare

    entries = strip_entries(results, image_path.name, target_bpp)
    if not entries:
        raise SicodecError(f"no results have per-image rows for {image_path.name}")
    x, y, size = box
    original = prepare(image_path).pixels
    if x + size > original.shape[1] or y + size > original.shape[0]:
        raise SicodecError(f"the crop {size}x{size} at ({x}, {y}) does not fit {image_path.name}")
    tiles = [("original", original)] + [
        (f"{r['name']} {point_key_of(r)[0]}{p}\n{bpp:.3f} bpp", reconstruct(r, p, image_path)) for r, p, bpp in entries]
    cols = min(len(tiles), 5)
    rows = -(-len(tiles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    try:
        for ax in axes.flat:
            ax.axis("off")
        for ax, (title, pixels) in zip(axes.flat, tiles):
            ax.imshow(pixels[y:y + size, x:x + size], interpolation="nearest")
            ax.set_title(title, fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_bytes_atomic(out, buf.getvalue())
    return out


# ---- the page ---------------------------------------------------------------------------------

def write_report(results_dir, out_md, images_dir=None, strip_image: str = "kodim23.png", target_bpp: float = 0.25,
                 box: tuple[int, int, int] = (400, 130, 160), dataset: str = "kodak") -> Path:
    """Regenerate `out_md` and its figures (in a folder named after it) from `results_dir`."""
    from .plot import plot

    results = load_folder(results_dir)
    out_md = Path(out_md)
    fig_dir = out_md.with_suffix("")
    fig_dir.mkdir(parents=True, exist_ok=True)
    references = [load_reference(n) for n in list_references(dataset)]
    by_name = {r["name"]: r for r in results}
    anchors = [by_name[a] for a in ANCHORS if a in by_name]
    mse = [ref for ref in references if "hyperprior" in ref["name"]]
    perceptual = [ref for ref in references if ref not in mse]
    published = {"psnr-rgb": mse, "ms-ssim-rgb": mse, "lpips": perceptual, "dists": perceptual}  # BD-rate columns

    rel = lambda p: os.path.relpath(p, out_md.parent)  # noqa: E731 - links relative to the page
    parts = [f"# Results on {dataset}",
             "",
             f"Generated by `sicodec report` from `{results_dir}` on "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d')}. Every number comes from real files: the rate "
             "is the whole file's size in bits per pixel, the metrics are computed on what decoding it returns. "
             "Do not edit by hand; re-run `sicodec report`.",
             ""]
    plot(results + references, fig_dir / "rd.png", title=f"{dataset}: rate vs quality (dashed: published)",
         max_bpp=2.0, dashed={ref["name"] for ref in references})
    parts += ["## Rate-quality curves", "",
              "Published curves (see `sicodec/bench/references/`): " + ", ".join(r["name"] for r in references) + ".",
              "", f"![rate-quality curves]({rel(fig_dir / 'rd.png')})", ""]

    parts += ["## BD-rate", "",
              "Bjøntegaard delta rate (monotone cubic interpolation, overlapping range only) of each row against "
              "each column: negative means fewer bits for the same quality. n/a: a curve lacks the metric or "
              "the curves do not overlap.", ""]
    for metric, key in BD_METRICS.items():
        columns = anchors + published[key]
        if not columns or not any(key in r["results"] for r in results):
            continue
        parts += [f"### {metric}", "", markdown_table(["", *(f"vs {a['name']}" for a in columns)],
                                                      bd_table(results, columns, metric)), ""]

    if images_dir is not None and (Path(images_dir) / strip_image).is_file():
        strip = draw_strip(results, Path(images_dir) / strip_image, fig_dir / "strip.png", target_bpp, box)
        parts += ["## Visual comparison", "",
                  f"{strip_image}, crop of {box[2]}x{box[2]} px at ({box[0]}, {box[1]}); each codec at its point "
                  f"nearest {target_bpp} bpp on this image, and every level of progressive models. The bpp is "
                  "the whole image's.", "", f"![visual comparison]({rel(strip)})", ""]

    parts += ["## Points", ""]
    for r in results:
        parts += [f"### {r['name']}", "", r.get("description", ""), "", points_table(r), ""]
    write_bytes_atomic(out_md, "\n".join(parts).encode())
    return out_md
