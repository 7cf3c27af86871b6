"""Running benchmarks: classic codecs over a folder of images, into results dicts (see `sicodec.bench.results`).

    from sicodec.bench.run import bench_classic
    res = bench_classic("webp", "data/kodak", workers=2)
    sicodec.bench.results.save_results(res, "results/kodak/webp.json")

Every point is a real file: the image is encoded to bytes, rate is 8 * len(bytes) / (width * height), the bytes
are decoded back and the metrics compare the decoded pixels with the original. Encoding and decoding are timed
with time.perf_counter (one run each, after one warm-up per process; library default threading).

`quality_metrics` and `results_from_rows` (re-exported from `results`) serve any codec, learned ones included:
build one row per image and point, {"image", "point", "bpp", <metric keys>, "encoding_time", "decoding_time"},
and turn the list into the averaged layout with `make_results`. FID and KID are measured per point over all
images (see `sicodec.bench.fidkid`): the rows carry patch features until `fidkid.per_point` takes them out.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import SicodecError
from ..image import IMAGE_SUFFIXES, SicodecNotice, list_image_files, prepare
from . import classic, fidkid
from .results import DATASET_METRIC_KEYS, METRIC_KEYS, METRIC_NAMES, make_results, results_from_rows

__all__ = [
    "DEFAULT_METRICS", "IMAGE_SUFFIXES", "bench_classic", "bench_image", "list_images", "metric_keys",
    "check_metric_weights", "quality_metrics", "results_from_rows", "make_results", "environment",
]

DEFAULT_METRICS = ("psnr", "ms-ssim", "lpips", "dists")
_MS_SSIM_FULL_SIDE = 161  # smallest side that gets all 5 MS-SSIM scales


def metric_keys(metrics) -> tuple[str, ...]:
    """Metric names (psnr, ms-ssim, lpips, dists, fid, kid, or their results keys) -> results keys, in the canonical
    order (the per-image metrics, then the data-set ones)."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    keys = set()
    for m in metrics:
        if m in METRIC_NAMES:
            keys.add(METRIC_NAMES[m])
        elif m in METRIC_KEYS or m in DATASET_METRIC_KEYS:
            keys.add(m)
        else:
            raise SicodecError(f"unknown metric {m!r}; use any of {', '.join(METRIC_NAMES)}")
    if not keys:
        raise SicodecError("no metric selected; use any of " + ", ".join(METRIC_NAMES))
    return tuple(k for k in (*METRIC_KEYS, *DATASET_METRIC_KEYS) if k in keys)


def check_metric_weights(metrics) -> None:
    """Fail early, before any encoding, when LPIPS, DISTS, FID or KID is asked for and the network's weights cannot
    be found (or, with downloads allowed, fetched; see `sicodec.metrics.weights.locate_weights`)."""
    from ..metrics.weights import DISTS_FILE, INCEPTION_FILE, LPIPS_FILE, locate_weights

    files = {"lpips": LPIPS_FILE, "dists": DISTS_FILE, "fid": INCEPTION_FILE, "kid": INCEPTION_FILE}
    keys = metric_keys(metrics)
    for file in dict.fromkeys(files[k] for k in keys if k in files):
        try:
            locate_weights(file)
        except SicodecError as e:
            users = " and ".join(k for k in keys if files.get(k) == file)
            raise type(e)(f"{e}; or leave {users} out of the metrics") from None


def quality_metrics(reference: np.ndarray, decoded: np.ndarray, metrics=DEFAULT_METRICS) -> dict[str, float]:
    """The selected metrics of `decoded` against `reference` (uint8 HxWx3 arrays), keyed as in results.

    MS-SSIM on images under 161 px on a side uses fewer scales (see sicodec.metrics.classic); its notice is
    silenced here, callers record it once (see `bench_classic`). FID and KID are not per-image metrics: they are
    skipped here (see `sicodec.bench.fidkid`).
    """
    from .. import metrics as m

    out = {}
    for key in metric_keys(metrics):
        if key == "psnr-rgb":
            out[key] = m.psnr(reference, decoded)
        elif key == "ms-ssim-rgb":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SicodecNotice)
                out[key] = m.ms_ssim(reference, decoded)
        elif key == "lpips":
            out[key] = m.lpips(reference, decoded)
        elif key == "dists":
            out[key] = m.dists(reference, decoded)
    return out


def list_images(image_dir) -> list[Path]:
    """The image files to benchmark: a folder's files with an image suffix (sorted), or an explicit list of files."""
    if isinstance(image_dir, (str, os.PathLike)):
        return list_image_files(image_dir)
    files = [Path(p) for p in image_dir]
    if not files:
        raise SicodecError("no images given")
    for p in files:
        if not p.is_file():
            raise SicodecError(f"{p}: no such image file")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise SicodecError("images must have distinct file names (rows are keyed by name): "
                           + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    return files


def _warm_up(spec: classic.CodecSpec) -> None:
    """Encode and decode a tiny image once so that library start-up is not timed with the first image."""
    tiny = np.full((16, 16, 3), 128, np.uint8)
    classic.decode_with(spec, classic.encode_with(spec, tiny, spec.qualities[len(spec.qualities) // 2]))


_warmed: set[str] = set()


def bench_image(codec_name: str, path, qualities, metrics=DEFAULT_METRICS) -> list[dict]:
    """One image through codec `codec_name` at each quality: one row per quality (see the module docstring)."""
    spec = classic.require(codec_name)
    if codec_name not in _warmed:
        _warm_up(spec)
        _warmed.add(codec_name)
    path = Path(path)
    pixels = prepare(path).pixels
    h, w = pixels.shape[:2]
    keys = metric_keys(metrics)
    reference = fidkid.features(pixels) if fidkid.wanted(keys) else None
    rows = []
    for q in qualities:
        t0 = time.perf_counter()
        data = classic.encode_with(spec, pixels, q)
        t1 = time.perf_counter()
        decoded = classic.decode_with(spec, data)
        t2 = time.perf_counter()
        if decoded.shape != pixels.shape:
            raise SicodecError(f"{codec_name}: {path.name} decoded to {decoded.shape[1]}x{decoded.shape[0]}, "
                               f"not {w}x{h}")
        row = {"image": path.name, "point": int(q), "bytes": len(data), "width": w, "height": h,
               "bpp": 8 * len(data) / (w * h)}
        row.update(quality_metrics(pixels, decoded, keys))
        row.update({"encoding_time": t1 - t0, "decoding_time": t2 - t1})
        if reference is not None:
            fidkid.attach(row, reference, [fidkid.features(decoded)])
        rows.append(row)
    return rows


def _init_worker(codec_name: str) -> None:
    _one_thread_worker()
    classic.require(codec_name)


def _one_thread_worker() -> None:
    import torch

    from ..memory import keep_freed_memory

    torch.set_num_threads(1)  # the pool provides the parallelism; more threads per worker only contend
    keep_freed_memory()


def run_jobs(fn, jobs: list[tuple], workers: int, desc: str, progress: bool = True,
             initializer=_one_thread_worker, initargs: tuple = ()) -> list:
    """fn(*job) for every job, concatenating the returned row lists (order not kept), with a progress bar
    (tqdm, when installed and `progress`). `workers` > 1 runs the jobs in that many "spawn" processes."""
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc=desc, unit="img")
        except ImportError:
            pass
    rows: list = []
    try:
        if workers == 1:
            for job in jobs:
                rows.extend(fn(*job))
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from concurrent.futures.process import BrokenProcessPool

            # spawn, not fork: forking a process that has started torch's or a codec's threads can deadlock.
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=initializer, initargs=initargs) as pool:
                    for fut in as_completed([pool.submit(fn, *job) for job in jobs]):
                        rows.extend(fut.result())
                        if bar is not None:
                            bar.update(1)
            except BrokenProcessPool:
                raise SicodecError(
                    "a benchmark worker process died (out of memory, a crash in a codec library, or a script that "
                    "runs a benchmark with workers > 1 outside `if __name__ == '__main__':`, which new worker "
                    "processes re-run); try workers=1 to see the error") from None
    finally:
        if bar is not None:
            bar.close()
    return rows


def environment() -> dict:
    """Machine and software facts recorded with every benchmark."""
    import torch

    from .. import __version__

    return {"sicodec": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def bench_classic(codec_name: str, image_dir, qualities=None, metrics=DEFAULT_METRICS, workers: int = 1,
                  progress: bool = True) -> dict:
    """Benchmark classic codec `codec_name` on the images of `image_dir` (a folder, or a list of files).

    `qualities`: the codec's quality values (default: its ladder, see `sicodec.bench.classic`). `metrics`: any of
    psnr, ms-ssim, lpips, dists, fid, kid (the last two per quality over all images, see `sicodec.bench.fidkid`).
    `workers` > 1 spreads the images over that many processes (timings then share the CPU: compare timings only
    between runs with the same number of workers; the workers are started with "spawn", so a calling script
    needs the `if __name__ == "__main__":` guard). `progress` shows a tqdm bar
    when tqdm is installed. Returns a validated results dict with per-image rows under "per_image".
    """
    spec = classic.require(codec_name)
    keys = metric_keys(metrics)
    qualities = list(spec.qualities if qualities is None else qualities)
    if not qualities:
        raise SicodecError(f"{codec_name}: no quality given")
    for q in qualities:
        spec.save_options(q)  # validates the value
    if len(set(qualities)) != len(qualities):
        raise SicodecError(f"{codec_name}: repeated quality values in {qualities}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SicodecError(f"workers must be a positive integer, got {workers!r}")
    files = list_images(image_dir)
    check_metric_weights(keys)  # after the folder, so that a wrong folder is named first
    fid_note = fidkid.check_patches(files, keys)
    workers = min(workers, len(files))

    rows = run_jobs(bench_image, [(codec_name, f, qualities, keys) for f in files], workers, codec_name, progress,
                    initializer=_init_worker, initargs=(codec_name,))
    rows, per_point = fidkid.per_point(rows, keys)
    order = {f.name: i for i, f in enumerate(files)}
    rows.sort(key=lambda r: (order[r["image"]], r["point"]))

    sizes = sorted({f"{r['width']}x{r['height']}" for r in rows})
    small = min(min(r["width"], r["height"]) for r in rows) < _MS_SSIM_FULL_SIDE
    folder = Path(image_dir) if isinstance(image_dir, (str, os.PathLike)) else files[0].parent
    meta = {
        "codec": spec.settings(),
        "versions": spec.versions(),
        "dataset": {"name": folder.name, "path": str(folder), "images": len(files), "sizes": sizes},
        "metrics": list(keys),
        "bpp": "8 * bytes of the encoded file (container included) / (width * height), averaged over images",
        "timing": {"clock": "time.perf_counter, one encode and one decode per image and point, after a warm-up",
                   "workers": workers, "threads": "library defaults",
                   "note": "seconds per image; with workers > 1 the processes share the CPU"},
        "environment": environment(),
        **fid_note,
    }
    if "ms-ssim-rgb" in keys and small:
        meta["ms-ssim-note"] = ("some images are under 161 px on a side: their MS-SSIM uses fewer than 5 scales "
                                "and is not comparable with published 5-scale values")
    description = f"{spec.description}; {len(files)} images from {folder.name}"
    return make_results(codec_name, description, rows, meta, point_key="quality", point_metrics=per_point)
