"""Split the slices of a trained SIC model into narrower ones: a warm start for more levels.

    python scripts/split_sic_slices.py WEIGHTS.safetensors OUT.safetensors [--factor 2 | --widths 8,8,16,...]
    sicodec train sic DATA RUN --config '{"slices": 16}' --init OUT.safetensors ...

`--factor F` splits every slice into F equal parts; `--widths` gives the new widths, each slice inside
one old slice (e.g. only the first slice halved, for a cheaper first level); the training config's
"slices" is then that list.

The output is float32 and keeps the source's step count (see SynonymousCodec.split_slices).
"""

import argparse

from sicodec.errors import SicodecError
from sicodec.models.weights import load_weights, save_weights


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("out")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--factor", type=int, default=2, help="split every slice into this many equal parts")
    how.add_argument("--widths", help="comma-separated widths of the new slices")
    a = p.parse_args(argv)
    try:
        model, meta = load_weights(a.weights)
        if model.arch != "sic":
            raise SicodecError(f"{a.weights}: a {model.arch} model, not sic")
        if a.widths:
            try:
                widths = [int(v) for v in a.widths.split(",")]
            except ValueError:
                raise SicodecError(f"--widths {a.widths!r}: not a comma-separated list of whole numbers") from None
        elif a.factor < 1 or any(w % a.factor for w in model.widths):
            raise SicodecError(f"slices of {model.widths[0]} channels do not split into {a.factor} parts")
        else:
            widths = [w // a.factor for w in model.widths for _ in range(a.factor)]
        split = model.split_slices(widths)
        save_weights(split, a.out, half=False, trained_steps=int(meta.get("sicodec.trained_steps", 0)),
                     status=meta.get("sicodec.status"))
    except (SicodecError, OSError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{a.out}: {split.slices} slices of {', '.join(map(str, split.widths))} channels")


if __name__ == "__main__":
    main()
