"""How to fill the slices a SIC file does not carry: PSNR, LPIPS and DISTS per level for several fills.

    python scripts/compare_fills.py [FOLDER] [--model sic|FILE] [--images N] [--levels 1,2,3]
                                    [--temperatures 1,0.5] [-o results/sic-fills.json]

Fills compared (float path, rounded latents; the decoder's `mean` and `ancestral` are the exact
versions of `predicted` and `ancestral-0.5`): hyper-mean (mu_h), predicted (each missing slice's
predicted mean, in a chain), uniform (round(mu_h + U(-2, 2)), the paper's sampler) and ancestral-t
(round(mean + t * scale * N), slice by slice, for each temperature t). Sampled fills use seed 0
(float64 draws, as the decoder makes them).
N images are taken evenly spaced from the sorted folder; their sides must be multiples of 64.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import sicodec
from sicodec.image import list_image_files
from sicodec.metrics.dists import DISTS
from sicodec.metrics.lpips import LPIPS


def fill(model, slices, mu_h, sigma_h, level, how, generator):
    """All latent slices: the transmitted ones (slices[:level]) and the rest filled `how`."""
    c = model.offsets[level]
    if how == "hyper-mean":
        return torch.cat(slices[:level] + [mu_h[:, c:]], dim=1)
    if how == "uniform":
        return torch.cat(slices[:level] + [model.fill(mu_h[:, c:], sigma_h[:, c:], "uniform", generator)], dim=1)
    t = None if how == "predicted" else float(how.removeprefix("ancestral-"))
    y_hat = torch.cat(slices[:level], dim=1)
    return torch.cat([y_hat, model.ancestral_fill(y_hat, mu_h, sigma_h, level, generator, temperature=t)], dim=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder", nargs="?", default="../shared/data/kodak")
    p.add_argument("--model", default="sic")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--levels", help="comma-separated levels (default: all)")
    p.add_argument("--temperatures", default="1,0.5", help="comma-separated temperatures of the ancestral fills")
    p.add_argument("-o", "--output", default="results/sic-fills.json")
    a = p.parse_args()
    torch.set_num_threads(2)
    model = sicodec.load_model(a.model)
    lpips, dists = LPIPS.from_weights(), DISTS.from_weights()
    every = list_image_files(a.folder)
    files = [every[i] for i in np.linspace(0, len(every) - 1, min(a.images, len(every))).round().astype(int)]
    levels = [int(v) for v in a.levels.split(",")] if a.levels else list(range(1, model.slices + 1))
    fills = ["hyper-mean", "predicted", "uniform"] + [f"ancestral-{t}" for t in a.temperatures.split(",")]
    scores = {f: np.zeros((len(levels), 3)) for f in fills}
    with torch.no_grad():
        for path in files:
            x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
            if x.shape[2] % model.stride or x.shape[3] % model.stride:
                raise SystemExit(f"{path.name}: sides must be multiples of {model.stride}")
            y = model.g_a(x)
            mu_h, sigma_h = model.hyper_params(torch.round(model.side_latent(y)))
            slices = list(torch.round(y).split(model.widths, dim=1))
            for i, level in enumerate(levels):
                for how in fills:
                    y_fill = fill(model, slices, mu_h, sigma_h, level, how, torch.Generator().manual_seed(0))
                    x_hat = torch.round(model.g_s(y_fill).clamp(0, 1) * 255) / 255
                    psnr = 10 * torch.log10(1 / torch.mean((x_hat - x) ** 2))
                    scores[how][i] += [psnr.item(), lpips(x_hat, x).mean().item(), dists(x_hat, x).mean().item()]
    result = {"model": a.model, "trained_steps": model.trained_steps, "folder": a.folder,
              "images": [f.name for f in files], "levels": levels,
              "fills": {f: {"psnr-rgb": (s[:, 0] / len(files)).round(3).tolist(),
                            "lpips": (s[:, 1] / len(files)).round(4).tolist(),
                            "dists": (s[:, 2] / len(files)).round(4).tolist()} for f, s in scores.items()}}
    Path(a.output).write_text(json.dumps(result, indent=1) + "\n")
    for f, r in result["fills"].items():
        for i, metric in enumerate(("psnr-rgb", "lpips", "dists")):
            print(f"{f if i == 0 else '':15s} {metric:9s}" + " ".join(f"{v:7.3f}" for v in r[metric]))


if __name__ == "__main__":
    main()
