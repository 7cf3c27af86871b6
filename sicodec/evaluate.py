"""`sicodec eval`: rate, distortion and perception of learned models, measured on real files.

Every point is a file written to disk and read back: its whole size is the rate (bits per original
pixel), and the metrics are computed on what decoding that file returns. The model's own estimate
of the rate (from its likelihoods) is reported beside it. A hyperprior family gives one point per
installed quality; a SIC model one point per level, all cut from one progressive file. FID and KID,
when asked for, are measured per point over all images' patches (see `sicodec.bench.fidkid`); with sampled
decoding (--samples) every sample's patches join the decoded side.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from . import codec
from .bitstream import parse
from .bench import fidkid
from .bench.run import check_metric_weights, environment, list_images, metric_keys, quality_metrics, run_jobs
from .bench.results import make_results
from .entropy.ops import bits
from .errors import SicodecError
from .image import prepare
from .models.registry import REGISTRY
from .models.sic import DEFAULT_FILL_MODE


def model_names(name: str) -> list[str]:
    """What one `eval` covers: every installed quality of a family, or the one model named."""
    family = [s for s in REGISTRY.values() if s.arch == name and s.quality is not None]
    if not family:
        return [name]
    installed = [s.name for s in family if codec.find_weights(s) is not None]
    if not installed:
        raise SicodecError(f"no weights of the {name} family are installed")
    return installed


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


def evaluate_image(model, path: Path, levels: list[int] | None, mode: str, samples: int, keys, workdir: Path,
                   refine: int = 0) -> list[dict]:
    """Rows (one per point) for one image: real bpp, estimated bpp, metrics, times (and, for FID or KID, the
    patch features under `fidkid.FEATURES`). `refine`: steps of encoder-side latent search."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = prepare(path).pixels
    reference_features = fidkid.features(reference) if fidkid.wanted(keys) else None
    pixels = reference.shape[0] * reference.shape[1]
    t = time.perf_counter()
    data = codec.compress(path, model=model, refine=refine)
    encode_time = time.perf_counter() - t
    x = codec._to_tensor(reference, model.stride)
    if refine:  # the latents the search chose, read back from the file
        likelihoods = model.latent_likelihoods(*model.read_latents(parse(data).sections, x.shape[-2:]))
    else:
        with torch.no_grad():
            likelihoods = model(x)["likelihoods"]
    spec = REGISTRY.get(model.name)
    rows = []
    for level in levels or [None]:
        file = workdir / f"{path.stem}.sic"
        file.write_bytes(codec.truncate(data, level) if level else data)
        coded = file.read_bytes()
        sampled = level is not None and level < model.slices and mode != "mean"
        scores, decoded_features, decode_time = [], [], 0.0
        for seed in range(samples if sampled else 1):
            t = time.perf_counter()
            image = codec.decompress(coded, model=model, **({"level": level, "mode": mode, "seed": seed} if level else {}))
            decode_time += time.perf_counter() - t
            decoded = np.asarray(image.convert("RGB"))
            scores.append(quality_metrics(reference, decoded, keys))
            if reference_features is not None:
                decoded_features.append(fidkid.features(decoded))
        used = likelihoods if level is None else {k: v for k, v in likelihoods.items() if k == "z" or int(k[1:]) <= level}
        row = {"image": path.name, "point": level if level else spec.quality if spec and spec.quality else 0,
               "bpp": 8 * len(coded) / pixels, "estimated_bpp": float(bits(used)) / pixels,
               "encoding_time": encode_time, "decoding_time": decode_time / len(scores)}
        row.update({k: float(np.mean([s[k] for s in scores])) for k in scores[0]})
        if reference_features is not None:
            fidkid.attach(row, reference_features, decoded_features)
        rows.append(row)
    return rows


def _evaluate_path(name: str, path: Path, levels: str, mode: str, samples: int, keys, refine: int) -> list[dict]:
    model = codec.load_model(name)  # cached per process
    points = parse_levels(levels, model.slices) if model.progressive else None
    with tempfile.TemporaryDirectory(prefix="sicodec-eval-") as tmp:
        return evaluate_image(model, path, points, mode, samples, keys, Path(tmp), refine)


def evaluate_results(name: str, folder, levels: str = "all", mode: str = DEFAULT_FILL_MODE, samples: int = 1,
                     metrics=("psnr", "ms-ssim", "lpips", "dists"), workers: int = 1, refine: int = 0) -> dict:
    """The results dict (CompressAI layout, per-image rows included) of model or family `name` on `folder`.
    Progressive models are measured in `mode`, by default the fill a plain decode uses; `refine` > 0
    encodes with that many steps of latent search (hyperprior models)."""
    if samples < 1 or workers < 1:
        raise SicodecError("--samples and --workers must be at least 1")
    keys = metric_keys(metrics)
    images = list_images(folder)  # a wrong folder is named before any missing metric weights
    check_metric_weights(keys)
    fid_note = fidkid.check_patches(images, keys)
    names = model_names(name)
    if refine:
        for n in names:
            codec.check_refine(codec.load_model(n), refine)
    jobs = [(n, path, levels, mode, samples, keys, refine) for n in names for path in images]
    rows, per_point = fidkid.per_point(run_jobs(_evaluate_path, jobs, workers, "eval"), keys)
    first = codec.load_model(names[0])
    progressive = first.progressive
    rows.sort(key=lambda r: (r["point"], r["image"]))
    label = name if len(names) > 1 else f"{first.name} ({mode})" if progressive else first.name
    if refine:
        label += f" (refine {refine})"
    return make_results(
        label, f"sicodec eval of {name} ({'levels, fill mode ' + mode if progressive else 'qualities'})", rows,
        meta={"models": names, "mode": mode if progressive else None, "samples": samples, "workers": workers,
              "refine": refine,
              **fid_note, **environment()},
        point_key="level" if progressive else "quality", point_metrics=per_point)

