"""The training loop: resumable checkpoints, CSV log, steps/s, optional bf16 autocast and compile."""

from __future__ import annotations

import csv
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import SicodecError
from ..models.registry import build_model
from .data import ImageFolder
from .loss import RateDistortionLoss


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def make_loss(model, lmbda: float, options: dict):
    """The training objective of a model: rate-distortion, or SVI for progressive (SIC) models."""
    if not model.progressive:
        return RateDistortionLoss(lmbda)
    from ..metrics.lpips import LPIPS
    from .svi import SVILoss

    options = dict(options)
    weights = options.pop("lpips_weights", None)
    lpips = None if weights is False else LPIPS.from_weights(weights)
    return SVILoss(model.slices, lpips=lpips, **options)


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    arch: str,
    data: str,
    out: str,
    steps: int,
    lmbda: float,
    config: dict | None = None,
    batch: int = 8,
    crop: int = 256,
    lr: float = 1e-4,
    checkpoint_every: int = 200,
    log_every: int = 20,
    bf16: bool = False,
    seed: int = 0,
    resume: bool = True,
    loss_options: dict | None = None,
    init: str | None = None,
    compile: bool = False,
    channels_last: bool = False,
) -> Path:
    """Train `arch` for `steps` optimiser steps; returns the checkpoint path.

    The hyperprior minimises lambda * 255^2 * MSE + bpp; SIC the SVI objective (`loss_options`:
    samples, alpha, warmup_steps, schedule, lpips_weights; lambda is not used).
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.pt"
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = build_model(arch, **(config or {}))
    if crop % model.stride:
        raise SicodecError(f"crop size {crop} must be a multiple of {model.stride} for {arch}")
    if init and not (resume and ckpt.exists()):
        from ..models.weights import load_weights

        start, _ = load_weights(init)
        if start.arch != arch or start.config != model.config:
            raise SicodecError(f"{init} holds a {start.arch} model with {start.config}, not {arch} with {model.config}")
        model.load_state_dict(start.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step = 0
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)  # our own checkpoint, never a downloaded file
        if state["arch"] != arch:
            raise SicodecError(f"{ckpt} holds a {state['arch']} model, not {arch}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for group in opt.param_groups:  # the learning rate asked for now wins (e.g. a decay stage)
            group["lr"] = lr
        step = state["step"]
        _set_rng_state(state["rng"])
        config = state["config"]
    loss_fn = make_loss(model, lmbda, loss_options or {})
    dataset = ImageFolder(data, crop=crop)
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        for part in model.compiled_parts:
            getattr(model, part).compile()
    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "bpp", "psnr", "steps_per_s"])
    t0, n0 = time.time(), step
    while step < steps:
        idx = np.random.randint(0, len(dataset), batch)
        x = torch.stack([dataset[i] for i in idx])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = loss_fn(model, x, step)
        if not torch.isfinite(losses["loss"]):
            raise SicodecError(f"training diverged at step {step + 1} (non-finite loss); lower the learning rate")
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % log_every == 0:
            rate = (step - n0) / (time.time() - t0)
            psnr = -10 * math.log10(max(float(losses["mse"].detach()), 1e-10))
            writer.writerow([step, f"{float(losses['loss'].detach()):.4f}", f"{float(losses['bpp'].detach()):.4f}", f"{psnr:.2f}", f"{rate:.3f}"])
            log.flush()
        if step % checkpoint_every == 0 or step == steps:
            save_checkpoint(ckpt, arch=arch, config=model.config, model=model.state_dict(),
                            optimizer=opt.state_dict(), step=step, rng=_rng_state(), lmbda=lmbda)
    log.close()
    return ckpt
