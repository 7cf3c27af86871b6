"""Fit some slice networks of a SIC model by likelihood alone, everything else frozen.

    python scripts/fit_slice_priors.py WEIGHTS.safetensors TRAIN_DIR OUT.safetensors --slices 1,2 \
        --val ../shared/data/kodak [--steps 3000 --batch 16 --lr 1e-4]

Slice numbers count from 1. The latents of TRAIN_DIR (centre crops of --crop pixels) and of --val are
computed once; every --val-every steps the estimated bpp of the chosen slices on --val is printed, and
the weights of the best validation are written (float32, same step count and status as the source).
See sicodec/train/priors.py for why this is the SVI optimum of those networks for frozen transforms.
"""

import argparse
import copy

import torch

from sicodec.errors import SicodecError
from sicodec.models.weights import load_weights, save_weights
from sicodec.train.priors import bpp_per_slice, encode_latents, fit_slice_networks


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("train")
    p.add_argument("out")
    p.add_argument("--slices", required=True, help="comma-separated slice numbers (from 1)")
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
        if model.arch != "sic":
            raise SicodecError(f"{a.weights}: a {model.arch} model, not sic")
        try:
            slices = sorted({int(v) - 1 for v in a.slices.split(",")})
        except ValueError:
            raise SicodecError(f"--slices {a.slices!r}: not a comma-separated list of slice numbers") from None
        if slices[0] < 0 or slices[-1] >= model.slices:
            raise SicodecError(f"--slices {a.slices}: the model has slices 1 to {model.slices}")
        channels = model.offsets[slices[-1] + 1]
        train, = encode_latents(model, a.train, channels, size=a.crop)
        val = encode_latents(model, a.val, channels)
    except (SicodecError, OSError) as e:
        raise SystemExit(f"error: {e}") from None

    def report(step):
        bpp = bpp_per_slice(model, val, slices)
        print(f"step {step}: validation bpp {sum(bpp):.5f} ({', '.join(f'{b:.5f}' for b in bpp)})", flush=True)
        return sum(bpp)

    best = [report(0), copy.deepcopy(model.state_dict())]

    def on_step(step, bpp):
        if step % a.val_every == 0 or step == a.steps:
            print(f"step {step}: training bpp {bpp:.5f}", flush=True)
            score = report(step)
            if score < best[0]:
                best[:] = [score, copy.deepcopy(model.state_dict())]

    fit_slice_networks(model, train, slices, a.steps, a.batch, a.lr, torch.Generator().manual_seed(a.seed), on_step)
    model.load_state_dict(best[1])
    try:
        save_weights(model.eval(), a.out, half=False, trained_steps=int(meta.get("sicodec.trained_steps", 0)),
                     status=meta.get("sicodec.status"))
    except OSError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{a.out}: best validation bpp {best[0]:.5f} of the chosen slices")


if __name__ == "__main__":
    main()
