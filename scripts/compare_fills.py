"""How to fill the slices a SIC file does not carry: PSNR and LPIPS per level for several fills.

    python scripts/compare_fills.py [KODAK_DIR] [--model sic|FILE] [--images N] [-o results/sic-fills.json]

Fills compared (float path, rounded latents; the decoder's `mean` is the exact version of `predicted`):
hyper-mean (mu_h), predicted (each missing slice's predicted mean, in a chain), uniform
(round(mu_h + U(-2, 2)), the paper's sampler), ancestral and ancestral-half (round(mean + t * scale * N),
slice by slice, t = 1 and 1/2). Sampled fills use seed 0.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import sicodec
from sicodec.metrics.lpips import LPIPS

FILLS = ("hyper-mean", "predicted", "uniform", "ancestral", "ancestral-half")


def fill(model, slices, mu_h, sigma_h, level, how, generator):
    """All latent slices: the transmitted ones (slices[:level]) and the rest filled `how`."""
    c = level * model.width
    if how == "hyper-mean":
        return torch.cat(slices[:level] + [mu_h[:, c:]], dim=1)
    if how == "uniform":
        return torch.cat(slices[:level] + [model.fill(mu_h[:, c:], sigma_h[:, c:], "uniform", generator)], dim=1)
    out = list(slices[:level])
    for k in range(level, model.slices):
        params = model.slice_params[k](model._slice_input(k, mu_h, sigma_h, out))
        mean, scale = model._slice_gaussian(k, params, mu_h, sigma_h)
        if how != "predicted":
            t = 1.0 if how == "ancestral" else 0.5
            mean = torch.round(mean + t * scale * torch.randn(mean.shape, generator=generator))
        out.append(mean)
    return torch.cat(out, dim=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kodak", nargs="?", default="../shared/data/kodak")
    p.add_argument("--model", default="sic")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("-o", "--output", default="results/sic-fills.json")
    a = p.parse_args()
    torch.set_num_threads(2)
    model = sicodec.load_model(a.model)
    lpips = LPIPS.from_weights()
    files = sorted(Path(a.kodak).glob("*.png"))[: a.images]
    scores = {f: np.zeros((model.slices, 2)) for f in FILLS}
    with torch.no_grad():
        for path in files:
            x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
            if x.shape[2] % model.stride or x.shape[3] % model.stride:
                raise SystemExit(f"{path.name}: sides must be multiples of {model.stride} (Kodak's are)")
            y = model.g_a(x)
            mu_h, sigma_h = model._split_hyper(model.h_s(torch.round(model.h_a(y))))
            slices = list(torch.round(y).split(model.width, dim=1))
            for level in range(1, model.slices + 1):
                for how in FILLS:
                    y_fill = fill(model, slices, mu_h, sigma_h, level, how, torch.Generator().manual_seed(0))
                    x_hat = torch.round(model.g_s(y_fill).clamp(0, 1) * 255) / 255
                    psnr = 10 * torch.log10(1 / torch.mean((x_hat - x) ** 2))
                    scores[how][level - 1] += [psnr.item(), lpips(x_hat, x).mean().item()]
    result = {"model": a.model, "trained_steps": model.trained_steps, "images": [f.name for f in files],
              "levels": list(range(1, model.slices + 1)),
              "fills": {f: {"psnr-rgb": (s[:, 0] / len(files)).round(3).tolist(),
                            "lpips": (s[:, 1] / len(files)).round(4).tolist()} for f, s in scores.items()}}
    Path(a.output).write_text(json.dumps(result, indent=1) + "\n")
    for f, r in result["fills"].items():
        print(f"{f:15s} PSNR  " + " ".join(f"{v:6.2f}" for v in r["psnr-rgb"]))
        print(f"{'':15s} LPIPS " + " ".join(f"{v:6.3f}" for v in r["lpips"]))


if __name__ == "__main__":
    main()
