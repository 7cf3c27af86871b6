"""Seconds per training step of a model configuration on this machine (used to size the defaults).

    python scripts/time_train_step.py sic '{"M": 256, "slices": 16}' --batch 8 --crop 128 [--bf16] [--no-lpips]
"""

import argparse
import json
import time

import torch

from sicodec.memory import keep_freed_memory
from sicodec.models.registry import build_model
from sicodec.train.loop import make_loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("arch")
    p.add_argument("config", nargs="?", default="{}")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--lpips", default="../shared/weights")
    p.add_argument("--no-lpips", action="store_true")
    p.add_argument("--compile", default="", help="comma-separated submodules to compile, e.g. g_a,g_s")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--return-freed-memory", action="store_true", help="glibc's default: no keep_freed_memory()")
    a = p.parse_args()
    kept = False if a.return_freed_memory else keep_freed_memory()
    torch.manual_seed(0)
    model = build_model(a.arch, **json.loads(a.config)).train()
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if a.compile:
        for part in a.compile.split(","):
            getattr(model, part).compile()
    options = {"lpips_weights": False if a.no_lpips else a.lpips} if model.progressive else {}  # SVI only
    loss_fn = make_loss(model, 0.013, options)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(a.batch, 3, a.crop, a.crop)
    times = []
    for step in range(a.steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = loss_fn(model, x, step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    params = sum(q.numel() for q in model.parameters()) / 1e6
    print(json.dumps({"arch": a.arch, "config": model.config, "params_M": round(params, 2), "batch": a.batch,
                      "crop": a.crop, "bf16": a.bf16, "compile": a.compile or None, "channels_last": a.channels_last,
                      "freed_memory_kept": kept, "threads": torch.get_num_threads(),
                      "s_per_step": round(sum(times[2:]) / a.steps, 3)}))


if __name__ == "__main__":
    main()
