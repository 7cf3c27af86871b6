"""Split every slice of a trained SIC model into narrower ones: a warm start for more levels.

    python scripts/split_sic_slices.py WEIGHTS.safetensors OUT.safetensors [--factor 2]
    sicodec train sic DATA RUN --config '{"slices": 16}' --init OUT.safetensors ...

The output is float32 and keeps the source's step count (see SynonymousCodec.split_slices).
"""

import argparse

from sicodec.errors import SicodecError
from sicodec.models.weights import load_weights, save_weights


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("out")
    p.add_argument("--factor", type=int, default=2)
    a = p.parse_args(argv)
    try:
        model, meta = load_weights(a.weights)
        if model.arch != "sic":
            raise SicodecError(f"{a.weights}: a {model.arch} model, not sic")
        split = model.split_slices(a.factor)
        save_weights(split, a.out, half=False, trained_steps=int(meta.get("sicodec.trained_steps", 0)),
                     status=meta.get("sicodec.status"))
    except (SicodecError, OSError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{a.out}: {split.slices} slices of {split.width} channels")


if __name__ == "__main__":
    main()
