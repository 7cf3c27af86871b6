"""Encode/decode time per Kodak image, coded vs estimated size, and raw ANS coder throughput.

    python scripts/bench_codec.py [KODAK_DIR] [--model NAME_OR_FILE] [--threads N] [--return-freed-memory]
                                  [-o results/bench-codec.json]

Like `sicodec eval`, it keeps freed memory for reuse (sicodec.memory); --return-freed-memory measures
glibc's default instead.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import sicodec
from sicodec.metrics import psnr
from sicodec.codec import _to_tensor
from sicodec.entropy import coding
from sicodec.entropy.exact import ACT_BITS
from sicodec.entropy.gaussian import coding_params, gaussian_tables
from sicodec.entropy.ops import bits
from sicodec.memory import keep_freed_memory


def coder_throughput(n: int = 2_000_000) -> dict:
    rng = np.random.default_rng(0)
    scales = np.exp(rng.uniform(np.log(0.2), np.log(20), n))
    y = np.round(rng.normal(0, scales)).astype(np.int64)
    idx, off = coding_params(torch.tensor(np.round(scales * 2**ACT_BITS)))
    tables = list(gaussian_tables())
    t = time.perf_counter()
    data = coding.encode(y - off, idx, tables)
    enc = time.perf_counter() - t
    t = time.perf_counter()
    coding.decode(data, idx, tables)
    dec = time.perf_counter() - t
    return {"symbols": n, "encode_msym_per_s": n / enc / 1e6, "decode_msym_per_s": n / dec / 1e6,
            "bits_per_symbol": 8 * len(data) / n}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kodak", nargs="?", default="../shared/data/kodak")
    p.add_argument("--model", default="hyperprior")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--return-freed-memory", action="store_true", help="glibc's default: no keep_freed_memory()")
    p.add_argument("-o", "--output", default="results/bench-codec.json")
    a = p.parse_args()
    kept = False if a.return_freed_memory else keep_freed_memory()
    torch.set_num_threads(a.threads)
    model = sicodec.load_model(a.model)
    rows = []
    files = sorted(Path(a.kodak).glob("*.png"))
    sicodec.decompress(sicodec.compress(files[0], model=model), model=model)  # warm-up: tables, kernels
    for f in files:
        t0 = time.perf_counter()
        data = sicodec.compress(f, model=model)
        t1 = time.perf_counter()
        out = sicodec.decompress(data, model=model)
        t2 = time.perf_counter()
        ref = np.asarray(Image.open(f).convert("RGB"))
        with torch.no_grad():
            est = float(bits(model(_to_tensor(ref, model.stride))["likelihoods"]))
        px = ref.shape[0] * ref.shape[1]
        rows.append({"image": f.name, "bytes": len(data), "bpp": 8 * len(data) / px, "estimated_bpp": est / px,
                     "psnr": psnr(ref, np.asarray(out)), "encode_s": t1 - t0, "decode_s": t2 - t1})
        print(f"{f.name}: {rows[-1]['bpp']:.4f} bpp (estimate {rows[-1]['estimated_bpp']:.4f}), "
              f"{rows[-1]['psnr']:.2f} dB, encode {t1 - t0:.3f} s, decode {t2 - t1:.3f} s", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("bpp", "estimated_bpp", "psnr", "encode_s", "decode_s")}
    thr = coder_throughput()
    print(f"mean: {mean}\ncoder: {thr}")
    result = {"model": model.name, "fingerprint": model.fingerprint().hex(), "threads": a.threads,
              "freed_memory_kept": kept,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
              "mean": mean, "coder": thr, "images": rows}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
