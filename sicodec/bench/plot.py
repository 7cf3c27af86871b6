"""Rate-quality plots of results dicts: one panel per metric present (PSNR, MS-SSIM, LPIPS, DISTS, FID, KID
against bpp).

matplotlib is imported only when `plot` is called (it is an optional dependency) and always with the Agg backend.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from ..errors import SicodecError
from .results import DATASET_METRIC_KEYS, METRIC_KEYS, atomic_write_bytes, validate_results

__all__ = ["plot"]

_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def _same(values):
    return list(values)


def _ms_ssim_db(values):
    return [-10 * math.log10(1 - v) if v < 1 else float("nan") for v in values]


_PANELS = {
    "psnr-rgb": ("PSNR (dB)", _same),
    "ms-ssim-rgb": ("MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", _ms_ssim_db),
    "lpips": ("LPIPS (lower is better)", _same),
    "dists": ("DISTS (lower is better)", _same),
    "fid": ("FID, 256x256 patches (lower is better)", _same),
    "kid": ("KID, 256x256 patches (lower is better)", _same),
}


def plot(results_list: list[dict], out_path: str | os.PathLike, title: str | None = None,
         max_bpp: float | None = None, dashed: set[str] = frozenset()) -> Path:
    """Draw every results dict in `results_list` (validated) into one figure at `out_path` (.png, .pdf or .svg).

    Curves are labelled by their "name"; a panel is drawn for each metric that at least one result has. The file
    is written atomically. `max_bpp` limits the x axis; curves named in `dashed` (e.g. published ones) are dashed. Needs matplotlib (SicodecError if it is missing).
    """
    out_path = Path(out_path)
    fmt = _FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise SicodecError(f"{out_path}: plot format must be one of {', '.join(_FORMATS)}")
    if not results_list:
        raise SicodecError("nothing to plot: no results given")
    for i, r in enumerate(results_list):
        validate_results(r, where=f"results #{i} ({r.get('name', '?') if isinstance(r, dict) else '?'})")
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise SicodecError("plotting needs matplotlib (pip install matplotlib)") from None

    metrics = [k for k in (*METRIC_KEYS, *DATASET_METRIC_KEYS) if any(k in r["results"] for r in results_list)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.0), squeeze=False)
    palette = plt.get_cmap("tab20" if len(results_list) > 10 else "tab10")
    colours = {r["name"]: palette(i % palette.N) for i, r in enumerate(results_list)}  # one colour per curve in every panel
    try:
        for ax, key in zip(axes[0], metrics):
            label, transform = _PANELS[key]
            for r in results_list:
                res = r["results"]
                if key not in res:
                    continue
                pts = sorted(zip(res["bpp"], transform(res[key])))
                if max_bpp is not None:
                    pts = [p for p in pts if p[0] <= max_bpp]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.4, label=r["name"], color=colours[r["name"]],
                            linestyle="--" if r["name"] in dashed else "-")
            ax.set_xlabel("bits per pixel (bpp)")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6, framealpha=0.6)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return atomic_write_bytes(out_path, buf.getvalue())
