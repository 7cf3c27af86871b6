"""The training loop: resumable checkpoints, validation on real files, best checkpoint, logs, data parallel.

One process trains on its own; under `torchrun` every process trains on its own random crops and the
gradients are averaged over all of them before each optimiser step (torch.distributed, gloo on CPUs,
NCCL on GPUs). The averaging is done on the flattened gradients rather than by wrapping the model in
DistributedDataParallel, because the SVI loss calls parts of the model (g_a, synthesize_level) outside
its forward, which the wrapper would not see.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import random
import signal
import threading
import time
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import SicodecError
from ..memory import keep_freed_memory
from ..models.registry import build_model
from .data import ImageFolder
from .loss import RateDistortionLoss
from .validate import Validator

TRAIN_LOG_COLUMNS = ["step", "loss", "bpp", "psnr", "steps_per_s"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run after a whole step, with a checkpoint of that step written."""


@contextmanager
def _stop_requests(enabled: bool):
    """Ctrl-C and SIGTERM ask the loop to stop after the step in progress; a second one stops at once.

    Only one-process runs on the main thread: under torchrun every process would have to agree on the step.
    """
    requested: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    before = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def _cpu_weights(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _checksum(weights: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(weights):
        h.update(weights[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def make_loss(model, lmbda: float, options: dict):
    """The training objective of a model: rate-distortion, or SVI for progressive (SIC) models."""
    if not model.progressive:
        if not lmbda or lmbda <= 0:
            raise SicodecError(f"training {model.arch} needs a positive lambda (--lambda), the rate-distortion trade-off")
        unknown = sorted(set(options) - {"quantization"})
        if unknown:
            raise SicodecError(f"{model.arch} has no training option {unknown[0]} (it is for SIC's SVI loss)")
        return RateDistortionLoss(lmbda, **options)
    from ..metrics.lpips import LPIPS
    from .svi import SVILoss

    options = dict(options)
    if "quantization" in options:
        raise SicodecError(f"--quantization is for the rate-distortion models, not for {model.arch}")
    weights = options.pop("lpips_weights", None)
    loss = SVILoss(model.slices, **options)  # its options are checked before the LPIPS network is loaded
    if weights is not False:
        loss.lpips = LPIPS.from_weights(weights)
    return loss


def warm_start(model, init: str, partial: bool = False) -> dict:
    """Load trained weights into a fresh model: all of them when `init` has the same architecture and
    configuration; with `partial`, from any model, the tensors that match in name and shape (e.g. a SIC
    model's conv transforms from a hyperprior), the rest keeping their fresh initialisation."""
    from ..models.weights import load_weights

    start, meta = load_weights(init)
    same = start.arch == model.arch and start.config == model.config
    if not (same or partial):
        raise SicodecError(f"{init} holds a {start.arch} model with {start.config}, not {model.arch} with "
                           f"{model.config} (--init-partial loads the tensors that match)")
    own = model.state_dict()
    matching = {k: v for k, v in start.state_dict().items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise SicodecError(f"{init}: no tensor matches a {model.arch} model with {model.config} in name and shape")
    model.load_state_dict(matching, strict=False)
    steps = int(meta.get("sicodec.trained_steps", 0)) if same else 0  # a partial start's steps trained another model
    return {"init": str(init), "init_steps": steps, "init_tensors": None if same else f"{len(matching)} of {len(own)}"}


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint this loop wrote (never a downloaded file: torch.load unpickles)."""
    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is one clear error
        raise SicodecError(f"{path}: cannot read checkpoint ({e})") from None


class _World:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    def __init__(self):
        self.size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        self.started_group = False
        if self.size > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.started_group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, params: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        for t in model.state_dict().values():
            dist.broadcast(t, 0)

    def gather(self, obj):
        if self.size == 1:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.started_group:
            dist.destroy_process_group()


def _progress(total: int, start: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=True)


def _tensorboard(out_dir: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SicodecError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
    return SummaryWriter(str(out_dir / "tensorboard"))


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
    init_partial: bool = False,
    compile: bool = False,
    channels_last: bool = False,
    val: str | None = None,
    val_every: int = 2000,
    val_images: int | None = None,
    val_metrics: tuple[str, ...] = ("psnr", "ms-ssim", "lpips"),
    progress: bool = False,
    tensorboard: bool = False,
    ema: float | None = None,
) -> Path:
    """Train `arch` for `steps` optimiser steps in folder `out`; returns the checkpoint path.

    The hyperprior minimises lambda * 255^2 * MSE + bpp; SIC the SVI objective (`loss_options`:
    samples, alpha, warmup_steps, schedule, lpips_weights; lambda is not used). With `val`, the
    model is validated every `val_every` steps on real files of that folder and `out/best.pt`
    keeps the checkpoint with the lowest validation objective. `init` starts a new run from trained
    weights (see `warm_start`; `init_partial` allows another architecture). With `ema` (a decay such as
    0.999), an exponential moving average of the weights is kept beside them: it is what validation
    measures, the best checkpoint is chosen by and export writes, as it is less noisy than the last step.
    """
    options = dict(locals())
    if steps < 1 or batch < 1 or lr <= 0 or checkpoint_every < 1 or log_every < 1 or val_every < 1:
        raise SicodecError("steps, batch, checkpoint and log intervals must be positive, and so must the learning rate")
    if ema is not None and not 0 < ema < 1:
        raise SicodecError(f"the moving average's decay must lie between 0 and 1 (e.g. 0.999), not {ema}")
    keep_freed_memory()
    world = _World()
    try:
        ckpt = _train(world, **options)
        world.barrier()  # no process tears the group down while another still uses it (gloo aborts then)
        return ckpt
    finally:
        world.close()


def _train(world, *, arch, data, out, steps, lmbda, config, batch, crop, lr, checkpoint_every, log_every, bf16,
           seed, resume, loss_options, init, init_partial, compile, channels_last, val, val_every, val_images,
           val_metrics, progress, tensorboard, ema) -> Path:
    out_dir, loss_options = Path(out), loss_options or {}
    dataset = ImageFolder(data, crop=crop)
    validator = Validator(val, val_images, val_metrics) if val else None
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt, best = out_dir / "checkpoint.pt", out_dir / "best.pt"
    state = load_checkpoint(ckpt) if resume and ckpt.exists() else None
    if state is not None:
        if state["arch"] != arch:
            raise SicodecError(f"{ckpt} holds a {state['arch']} model, not {arch}")
        config = state["config"]
    random.seed(seed + world.rank)  # each process draws its own crops
    np.random.seed(seed + world.rank)
    torch.manual_seed(seed)
    model = build_model(arch, **(config or {}))
    if crop % model.stride:
        raise SicodecError(f"crop size {crop} must be a multiple of {model.stride} for {arch}")
    started = {"init": None, "init_steps": 0, "init_tensors": None}  # what the run started from (kept across resumes)
    if init and state is None:
        started = warm_start(model, init, init_partial)
    model.to(world.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step, best_score, stages = 0, math.inf, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for group in opt.param_groups:  # the learning rate asked for now wins (e.g. a decay stage)
            group["lr"] = lr
        step = state["step"]
        best_score = state.get("best_score", math.inf)
        previous = state.get("recipe", {})
        started = {k: previous.get(k, v) for k, v in started.items()}
        stages = previous.get("stages", [])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        if len(rngs) != world.size:
            raise SicodecError(f"{ckpt} was written by {len(rngs)} processes; resume it with as many, not {world.size}")
        _set_rng_state(rngs[world.rank])
    if world.size > 1:
        world.broadcast_parameters(model)
    loss_fn = make_loss(model, lmbda, loss_options)
    if getattr(loss_fn, "lpips", None) is not None:
        loss_fn.lpips.to(world.device)
    stage = {"lr": lr, "batch": batch, "crop": crop, "ema": ema}
    if not stages or {k: stages[-1].get(k) for k in stage} != stage:  # a resume that changes one starts a stage
        stages = stages + [{"from_step": step, **stage}]
    recipe = {"data": str(data), "data_images": len(dataset), "batch": batch, "processes": world.size, "crop": crop,
              "lr": lr, "bf16": bf16, "compile": compile, "channels_last": channels_last, "seed": seed, **started,
              "loss_options": {k: v for k, v in loss_options.items() if k != "lpips_weights"}, "stages": stages}

    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    averaged = None
    if ema:
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema))
        if state is not None and "ema" in state:  # a run that had no average starts one from its weights now
            averaged.module.load_state_dict(state["ema"]["weights"])
            averaged.n_averaged.fill_(state["ema"]["updates"])
    if compile:
        for part in model.compiled_parts:
            getattr(model, part).compile()
    params = [p for p in model.parameters() if p.requires_grad]
    log = writer = board = bar = None
    if world.main:
        log_path = out_dir / "log.csv"
        new_log = not log_path.exists()
        log = open(log_path, "a", newline="")
        writer = csv.writer(log)
        if new_log:
            writer.writerow(TRAIN_LOG_COLUMNS)
        board = _tensorboard(out_dir, tensorboard)
        bar = _progress(steps, step, progress)

    def checkpoint_state() -> dict:
        weights = _cpu_weights(model)
        state = dict(arch=arch, config=model.config, model=weights, optimizer=opt.state_dict(), step=step,
                     rng=world.gather(_rng_state()), lmbda=lmbda, recipe=recipe, best_score=best_score)
        if averaged is not None:
            state["ema"] = {"decay": ema, "updates": int(averaged.n_averaged), "weights": _cpu_weights(averaged.module)}
        if world.size > 1:  # the processes must still hold the same weights
            checksums = world.gather(_checksum(weights))
            if len(set(checksums)) > 1:
                raise SicodecError(f"the {world.size} training processes hold different weights at step {step}")
            state["replica_checksums"] = checksums
        return state

    autocast = (torch.autocast(world.device.type, dtype=torch.bfloat16) if bf16 else nullcontext())
    t0, n0 = time.time(), step
    closing = ExitStack()  # the log, progress bar and TensorBoard writer, whatever ends the loop
    for thing in (bar, board, log):
        if thing:
            closing.callback(thing.close)
    with closing, _stop_requests(world.size == 1) as stop_requested:
        while step < steps:
            idx = np.random.randint(0, len(dataset), batch)
            x = torch.stack([dataset[i] for i in idx]).to(world.device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                losses = loss_fn(model, x, step)
            if not torch.isfinite(losses["loss"]):
                raise SicodecError(f"training diverged at step {step + 1} (non-finite loss); lower the learning rate")
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if world.size > 1:
                world.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            if world.main and step % log_every == 0:
                rate = (step - n0) / (time.time() - t0)
                psnr = -10 * math.log10(max(float(losses["mse"].detach()), 1e-10))
                row = [float(losses["loss"].detach()), float(losses["bpp"].detach()), psnr, rate]
                writer.writerow([step, f"{row[0]:.4f}", f"{row[1]:.4f}", f"{row[2]:.2f}", f"{row[3]:.3f}"])
                log.flush()
                if board:
                    for name, value in zip(TRAIN_LOG_COLUMNS[1:], row):
                        board.add_scalar(f"train/{name}", value, step)
                if bar:
                    bar.set_postfix(loss=f"{row[0]:.3f}", bpp=f"{row[1]:.3f}", psnr=f"{psnr:.2f}", steps_s=f"{rate:.2f}")
            if bar:
                bar.update(1)
            validating = validator is not None and (step % val_every == 0 or step == steps)
            if validating:
                if world.main:
                    score = validator.run(averaged.module if averaged else model, loss_fn, step, out_dir, board)
                    improved = score < best_score
                    best_score = min(best_score, score)
                world.barrier()
            if step % checkpoint_every == 0 or step == steps or validating or stop_requested:
                snapshot = checkpoint_state()
                if world.main:
                    save_checkpoint(ckpt, **snapshot)
                    if validating and improved:
                        save_checkpoint(best, **snapshot)
            if stop_requested and step < steps:
                raise TrainingInterrupted(f"stopped after step {step} with a checkpoint of it in {ckpt}; "
                                          "run the same command to resume")
    return ckpt
