"""Fit a model's rate networks by likelihood alone, or a hyperprior's g_s on rounded latents, with g_a frozen.

    python scripts/fit_priors.py WEIGHTS.safetensors TRAIN_DIR OUT.safetensors --val ../shared/data/kodak \
        [--slices 1,2] [--hyper] [--synthesis] [--steps 3000 --batch 16 --lr 1e-4]

A hyperprior's h_a, h_s and z density are fitted; for SIC the slice networks named by --slices
(numbers from 1, or "all"), and with --hyper its h_a, h_s and z density. With --synthesis a
hyperprior's g_s alone is fitted for MSE on round(y) instead (files keep their bytes, decoded pixels
change). The latents of TRAIN_DIR (centre crops of --crop pixels) and of --val are computed once;
every --val-every steps the estimated bpp (or, with --synthesis, the PSNR) on --val is printed, and
the weights of the best validation are written (float32, same step count and status as the source).
See sicodec/train/priors.py and synthesis.py for why these are the training optima.
"""

import argparse
import copy

import torch

from sicodec.errors import SicodecError
from sicodec.models.weights import load_weights, save_weights
from sicodec.train.priors import bpp_per_part, encode_latents, fit_rate_networks, fitted_parts
from sicodec.train.synthesis import fit_synthesis, synthesis_psnr


def parse_slices(text: str | None, hyper: bool, model, synthesis: bool = False) -> list[int]:
    """0-based slice indices from "1,2,..." or "all" (SIC only)."""
    if synthesis and model.arch != "hyperprior":
        raise SicodecError(f"--synthesis applies to hyperprior models only (not {model.arch})")
    if model.arch == "hyperprior":
        if text is not None or hyper:
            raise SicodecError("--slices and --hyper apply to sic models only (a hyperprior's are always fitted)")
        return []
    if model.arch != "sic":
        raise SicodecError(f"no rate networks to fit in a {model.arch} model")
    if text is None:
        if not hyper:
            raise SicodecError(f"nothing to fit: give --slices (1 to {model.slices} or all), --hyper or both")
        return []
    if text == "all":
        return list(range(model.slices))
    try:
        slices = sorted({int(v) - 1 for v in text.split(",")})
    except ValueError:
        raise SicodecError(f"--slices {text!r}: not a comma-separated list of slice numbers") from None
    if slices[0] < 0 or slices[-1] >= model.slices:
        raise SicodecError(f"--slices {text}: the model has slices 1 to {model.slices}")
    return slices


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("train")
    p.add_argument("out")
    p.add_argument("--slices", help="sic: comma-separated slice numbers (from 1), or all")
    p.add_argument("--hyper", action="store_true", help="sic: also fit h_a, h_s and the z density")
    p.add_argument("--synthesis", action="store_true", help="hyperprior: fit g_s for MSE on round(y) instead")
    p.add_argument("--val", required=True, help="folder of validation images")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        model, meta = load_weights(a.weights)
        slices = parse_slices(a.slices, a.hyper, model, a.synthesis)
        parts = fitted_parts(slices, a.hyper)
        train, = encode_latents(model, a.train, size=a.crop, keep_images=a.synthesis)
        val = encode_latents(model, a.val, keep_images=a.synthesis)
    except (SicodecError, OSError) as e:
        raise SystemExit(f"error: {e}") from None

    def report(step):  # the score to minimise
        if a.synthesis:
            psnr = synthesis_psnr(model, val)
            print(f"step {step}: validation PSNR {psnr:.4f} dB", flush=True)
            return -psnr
        bpp = bpp_per_part(model, val, parts)
        each = ", ".join(f"{name} {b:.5f}" for name, b in bpp.items())
        print(f"step {step}: validation bpp {sum(bpp.values()):.5f} ({each})", flush=True)
        return sum(bpp.values())

    best = [report(0), copy.deepcopy(model.state_dict())]

    def on_step(step, loss):
        if step % a.val_every == 0 or step == a.steps:
            print(f"step {step}: training {'MSE' if a.synthesis else 'bpp'} {loss:.6f}", flush=True)
            score = report(step)
            if score < best[0]:
                best[:] = [score, copy.deepcopy(model.state_dict())]

    torch.manual_seed(a.seed)  # z's training noise
    generator = torch.Generator().manual_seed(a.seed)
    if a.synthesis:
        fit_synthesis(model, train, a.steps, a.batch, a.lr, generator, on_step)
    else:
        fit_rate_networks(model, train, a.steps, slices, a.hyper, a.batch, a.lr, generator, on_step)
    model.load_state_dict(best[1])
    try:
        save_weights(model.eval(), a.out, half=False, trained_steps=int(meta.get("sicodec.trained_steps", 0)),
                     status=meta.get("sicodec.status"))
    except OSError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{a.out}: best validation " + (f"PSNR {-best[0]:.4f} dB" if a.synthesis else f"bpp {best[0]:.5f} of the fitted parts"))


if __name__ == "__main__":
    main()
