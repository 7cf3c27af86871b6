"""SIC speed per Kodak image and level: encode time, decode time per level and fill mode, bytes per level.

    python scripts/bench_sic.py [KODAK_DIR] [--model sic|FILE] [--images N] [-o results/bench-sic.json]

Without installed SIC weights it times the default configuration with seeded random weights (speed
only: sizes and quality of an untrained model mean nothing and are not reported then).
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import sicodec
from sicodec.bitstream import parse
from sicodec.errors import ModelError
from sicodec.models.registry import build_model
from sicodec.models.sic import FILL_MODES


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kodak", nargs="?", default="../shared/data/kodak")
    p.add_argument("--model", default="sic")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", default="results/bench-sic.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try:
        model, trained = sicodec.load_model(a.model), True
    except ModelError:
        torch.manual_seed(0)
        model, trained = build_model("sic").eval(), False
        model.name = "sic"
    files = sorted(Path(a.kodak).glob("*.png"))[: a.images]
    sicodec.decompress(sicodec.compress(files[0], model=model), model=model, mode="mean")  # warm-up
    rows = []
    for f in files:
        t = time.perf_counter()
        data = sicodec.compress(f, model=model)
        enc = time.perf_counter() - t
        parsed = parse(data)
        px = parsed.header.width * parsed.header.height
        row = {"image": f.name, "encode_s": enc, "levels": []}
        for level in range(1, model.slices + 1):
            entry = {"level": level}
            if trained:
                entry["bpp"] = 8 * parsed.section_offsets()[level] / px
            for mode in FILL_MODES:
                t = time.perf_counter()
                sicodec.decompress(data, model=model, level=level, mode=mode)
                entry[f"decode_{mode}_s"] = time.perf_counter() - t
            row["levels"].append(entry)
        rows.append(row)
        print(f"{f.name}: encode {enc:.3f} s, decode (mean) " +
              " ".join(f"L{e['level']}:{e['decode_mean_s']:.3f}" for e in row["levels"]), flush=True)
    mean = {"encode_s": float(np.mean([r["encode_s"] for r in rows])),
            **{f"decode_{mode}_s_per_level": [float(np.mean([r["levels"][k][f"decode_{mode}_s"] for r in rows]))
                                              for k in range(model.slices)] for mode in FILL_MODES}}
    print(json.dumps(mean, indent=1))
    out = {"model": model.name, "trained": trained, "config": model.config, "threads": a.threads,
           "machine": f"{platform.machine()}, torch {torch.__version__}", "mean": mean, "images": rows}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
