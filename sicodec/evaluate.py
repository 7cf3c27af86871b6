"""`sicodec eval`: rate, distortion and perception of learned models, measured on real files.

Every point is a file written to disk and read back: its whole size is the rate (bits per original
pixel), and the metrics are computed on what decoding that file returns. The model's own estimate
of the rate (from its likelihoods) is reported beside it. A hyperprior family gives one point per
installed quality; a SIC model one point per level, all cut from one progressive file.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import codec
from .errors import SicodecError
from .models.registry import REGISTRY
from .train.data import list_images
from .train.loss import bits

METRICS = ("psnr", "ms-ssim", "lpips", "dists")
_KEYS = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb", "lpips": "lpips", "dists": "dists"}


def models_for(name: str) -> list:
    """The models one `eval` covers: every installed quality of a family, or the one model named."""
    family = [s for s in REGISTRY.values() if s.arch == name and s.quality is not None]
    if family:
        installed = [s for s in family if codec.find_weights(s) is not None]
        if not installed:
            raise SicodecError(f"no weights of the {name} family are installed")
        return [codec.load_model(s.name) for s in installed]
    return [codec.load_model(name)]


def parse_levels(text: str, top: int) -> list[int]:
    if text == "all":
        return list(range(1, top + 1))
    try:
        levels = sorted({int(t) for t in text.split(",")})
    except ValueError:
        raise SicodecError(f"--levels must be 'all' or a list like 1,3,5, not {text!r}") from None
    if not levels or levels[0] < 1 or levels[-1] > top:
        raise SicodecError(f"levels must lie in 1..{top}")
    return levels


def _score(reference: np.ndarray, image: Image.Image, metrics) -> dict:
    from . import metrics as m

    out = np.asarray(image.convert("RGB"))
    fns = {"psnr": m.psnr, "ms-ssim": m.ms_ssim, "lpips": m.lpips, "dists": m.dists}
    return {_KEYS[k]: float(fns[k](reference, out)) for k in metrics}


def evaluate_image(model, path: Path, levels: list[int] | None, mode: str, samples: int, metrics, workdir: Path) -> list[dict]:
    """Rows (one per point) for one image: real bpp, estimated bpp, metrics, times."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = codec.prepare(path).pixels
    pixels = reference.shape[0] * reference.shape[1]
    t = time.perf_counter()
    data = codec.compress(path, model=model)
    encode_time = time.perf_counter() - t
    with torch.no_grad():
        likelihoods = model(codec._to_tensor(reference, model.stride))["likelihoods"]
    rows = []
    for point in levels or [None]:
        file = workdir / f"{path.stem}-{model.name}-{point or 'q'}.sic"
        file.write_bytes(codec.truncate(data, point) if point else data)
        coded = file.read_bytes()
        scores, decode_time = [], 0.0
        for j in range(samples if point and point < model.slices and mode != "mean" else 1):
            t = time.perf_counter()
            options = {"level": point, "mode": mode, "seed": j} if point else {}
            image = codec.decompress(coded, model=model, **options)
            decode_time += time.perf_counter() - t
            scores.append(_score(reference, image, metrics))
        if point:
            est_bits = float(bits({"z": likelihoods["z"], **{f"y{k}": likelihoods[f"y{k}"] for k in range(1, point + 1)}}))
        else:
            est_bits = float(bits(likelihoods))
        row = {"image": path.name, "point": point if point else model_quality(model), "bpp": 8 * len(coded) / pixels,
               "estimated_bpp": est_bits / pixels, "encoding_time": encode_time,
               "decoding_time": decode_time / len(scores)}
        row.update({k: float(np.mean([s[k] for s in scores])) for k in scores[0]})
        rows.append(row)
    return rows


def model_quality(model) -> int | None:
    spec = REGISTRY.get(model.name)
    return spec.quality if spec else None


def evaluate(name: str, folder: str | Path, levels: str = "all", mode: str = "mean", samples: int = 1,
             metrics=METRICS, progress: bool = True) -> list[dict]:
    """Rows for every image of `folder` and every point of the model (family)."""
    images = list_images(folder)
    rows = []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=0, unit="image", desc=f"eval {name}")
        except ImportError:
            bar = None
    with tempfile.TemporaryDirectory(prefix="sicodec-eval-") as tmp:
        for model in models_for(name):
            points = parse_levels(levels, model.slices) if model.progressive else None
            if bar is not None:
                bar.total += len(images)
                bar.refresh()
            for path in images:
                rows += evaluate_image(model, path, points, mode, samples, metrics, Path(tmp))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return rows
