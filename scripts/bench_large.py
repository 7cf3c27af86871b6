"""Huge images: peak memory (RSS) and time of `sicodec compress` / `decompress`, and seams at tile borders.

    python scripts/bench_large.py [--kodak ../shared/data/kodak] [--model hyperprior-q4] [-o results/large-images.json]

The test photos are mosaics of Kodak images (flipped at random) at 4096x4096 and 7680x4320, placed so
that no photo edge lies on a tile border (they would make the border bands look worse for their own sake). Each
command runs in its own process, which reports its own peak RSS. Seamlessness: PSNR of the decoded
image in 8-pixel bands along the tile borders (every 1024 pixels) against the PSNR everywhere else
and in control bands halfway between borders; and a 2048x2048 mosaic coded with and without tiles.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((4096, 4096), (7680, 4320))
TILE_PIXELS = 1024  # 64 latent pixels at stride 16 (LatentCodecModel.tile)


def mosaic(kodak: Path, width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    files = sorted(kodak.glob("*.png"))
    canvas = np.zeros((height, width, 3), np.uint8)
    y = -256  # the photos' own edges (every 512 and 768 px) never fall on a tile border (every 1024 px)
    while y < height:
        x = -384
        while x < width:
            a = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"))
            if a.shape[0] > a.shape[1]:
                a = a.transpose(1, 0, 2)
            if rng.random() < 0.5:
                a = a[:, ::-1]
            top, left = max(0, -y), max(0, -x)
            h, w = min(a.shape[0], height - y), min(a.shape[1], width - x)
            canvas[y + top:y + h, x + left:x + w] = a[top:h, left:w]
            x += a.shape[1]
        y += 512
    return Image.fromarray(canvas)


def child(argv: list[str]) -> None:
    """Run one sicodec command in this process; print its seconds and this process's peak RSS."""
    from sicodec.cli import main

    t = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(json.dumps({"exit": code, "seconds": round(seconds, 1), "peak_rss_mib": round(peak)}))


def run(*argv: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def border_bands(height: int, width: int, offset: int = 0, period: int = TILE_PIXELS, half: int = 4) -> np.ndarray:
    """Pixels within `half` of an interior tile border (offset 0), or of the lines halfway between
    borders (offset period / 2: a control with the same shape that no border touches)."""
    rows = np.zeros(height, bool)
    cols = np.zeros(width, bool)
    for b in range(period + offset, height, period):
        rows[b - half:b + half] = True
    for b in range(period + offset, width, period):
        cols[b - half:b + half] = True
    return rows[:, None] | cols[None, :]


def psnr(err: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / err.mean()))


def tiled_vs_untiled(image: Image.Image, model_name: str) -> dict:
    """Decode one image coded with tiles and without: how far apart the two reconstructions are."""
    import sicodec

    model = sicodec.load_model(model_name)
    tiled = np.asarray(sicodec.decompress(sicodec.compress(image, model=model), model=model), np.float64)
    model.tile = 10**6
    whole = np.asarray(sicodec.decompress(sicodec.compress(image, model=model), model=model), np.float64)
    del model.tile
    diff = np.abs(tiled - whole)
    return {"size": f"{image.width}x{image.height}", "max_abs_difference": int(diff.max()),
            "pixels_that_differ": float((diff > 0).mean()),
            "psnr_tiled_vs_untiled": round(psnr(diff**2), 2) if diff.any() else "identical"}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    p = argparse.ArgumentParser()
    p.add_argument("--kodak", default="../shared/data/kodak")
    p.add_argument("--model", default="hyperprior-q4")
    p.add_argument("-o", "--output", default="results/large-images.json")
    p.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="e.g. 4096x4096,7680x4320")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for width, height in (tuple(int(v) for v in size.split("x")) for size in a.sizes.split(",")):
            src, sic, dec = tmp / f"{width}x{height}.png", tmp / f"{width}x{height}.sic", tmp / f"{width}x{height}-dec.png"
            mosaic(Path(a.kodak), width, height).save(src)
            enc = run("compress", str(src), str(sic), "--model", a.model)
            de = run("decompress", str(sic), str(dec))
            original = np.asarray(Image.open(src), np.float64)
            decoded = np.asarray(Image.open(dec).convert("RGB"), np.float64)
            err = ((original - decoded) ** 2).mean(axis=2)
            bands = border_bands(height, width)
            control = border_bands(height, width, offset=TILE_PIXELS // 2)
            row = {"size": f"{width}x{height}", "megapixels": round(width * height / 1e6, 1), "model": a.model,
                   "bpp": round(8 * sic.stat().st_size / (width * height), 4),
                   "encode_s": enc["seconds"], "encode_peak_rss_mib": enc["peak_rss_mib"],
                   "decode_s": de["seconds"], "decode_peak_rss_mib": de["peak_rss_mib"],
                   "psnr_tile_borders": round(psnr(err[bands]), 2), "psnr_elsewhere": round(psnr(err[~bands]), 2),
                   "psnr_control_bands": round(psnr(err[control]), 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
        comparison = tiled_vs_untiled(mosaic(Path(a.kodak), 2048, 2048, seed=1), a.model)
        print(json.dumps(comparison), flush=True)
    import platform

    import torch

    result = {"machine": {"cpus": __import__("os").cpu_count(), "torch": torch.__version__, "platform": platform.platform()},
              "note": "mosaics of Kodak images; each command in its own process (peak RSS of that process, "
                      "Python and torch included); the CPU was shared with other work, so times are upper bounds",
              "tile": {"latent_pixels": 64, "image_pixels": TILE_PIXELS, "halo_latent_pixels": 4}, "rows": rows,
              "tiled_vs_untiled": comparison}
    Path(a.output).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{a.output}: written")


if __name__ == "__main__":
    main()
