"""Encoder-side latent refinement: per image, search for the integer latents that code best.

g_a is trained to be good on average; for one image, other integers y often give a smaller file, a
better reconstruction or both. Refinement minimises the model's own training objective, bits +
lambda * 255^2 * SSE, over y by gradient descent with stochastic Gumbel annealing (Yang, Bamler and
Mandt, NeurIPS 2020): each value is softly rounded down or up at random, the softness annealed to
hard rounding. The decoder is unchanged; only what the encoder writes differs.

The scales (from the side information) are held fixed, so the objective splits over latent tiles
(memory stays bounded on huge images): each tile is refined with its decoded neighbours as context,
judged on the pixels it reaches, and kept only when it lowers the exact objective.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from ..entropy.ops import bits, likelihood_bound

LEARNING_RATE = 0.005
TAU_START, TAU_DECAY = 0.5, 3.0  # softness of rounding: TAU_START * exp(-TAU_DECAY * step / steps)


def soft_round(v: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """floor(v) + a relaxed Bernoulli draw of rounding up, more likely the nearer v is to ceil(v)."""
    floor = torch.floor(v)
    d = (v - floor).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(d), -torch.atanh(1 - d)], dim=-1) / tau
    u = torch.rand(logits.shape, generator=generator, device=v.device, dtype=v.dtype).clamp(1e-10, 1 - 1e-10)
    gumbel = -torch.log(-torch.log(u))
    return floor + torch.softmax((logits + gumbel) / tau, dim=-1)[..., 1]


@contextmanager
def _search_mode(module: torch.nn.Module):
    """No gradients for `module`'s weights (only the latents are optimised), and denormal floats
    flushed to zero: their slow path made the backward pass 5x slower on some models (measured)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)  # PyTorch's default; it cannot be read back
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def low_precision(device: torch.device) -> torch.autocast:
    """bf16 autocast where the hardware has it (2.2x faster on this project's CPUs, same result)."""
    bf16 = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def _windows(rows: int, cols: int, tile: int, halo: int):
    """Per latent tile: its own cells, the cells around it that reach its pixels (context, 2 halos)
    and, within the context's pixels, those its cells reach (1 halo), as (rows, cols) slices in latent cells."""
    for i0 in range(0, rows, tile):
        for j0 in range(0, cols, tile):
            i1, j1 = min(i0 + tile, rows), min(j0 + tile, cols)
            a0, b0 = max(i0 - 2 * halo, 0), max(j0 - 2 * halo, 0)
            own = (slice(i0, i1), slice(j0, j1))
            context = (slice(a0, min(i1 + 2 * halo, rows)), slice(b0, min(j1 + 2 * halo, cols)))
            inner = (slice(i0 - a0, i1 - a0), slice(j0 - b0, j1 - b0))
            reached = (slice(max(i0 - halo, 0) - a0, min(i1 + halo, rows) - a0),
                       slice(max(j0 - halo, 0) - b0, min(j1 + halo, cols) - b0))
            yield own, context, inner, reached


def _pixels(cells: tuple[slice, slice], s: int) -> tuple:
    return (..., *(slice(c.start * s, c.stop * s) for c in cells))


def refine_latent(model, x: torch.Tensor, y: torch.Tensor, scales: torch.Tensor, steps: int, lmbda: float,
                  valid: tuple[int, int] | None = None, seed: int = 0) -> torch.Tensor:
    """Integer latents for image `x` (1x3xHxW in [0, 1]) that code it at a lower bits + lmbda *
    255^2 * MSE (the training objective) than round(y), searched for `steps` steps per tile.
    `scales` are y's Gaussian scales (fixed); only the top-left `valid` (height, width) pixels count."""
    device = model._transforms_device()
    g_s, s = model.g_s, model.latent_stride
    x, scales = x.to(device), scales.to(device)
    h, w = valid or x.shape[-2:]
    weight = torch.zeros_like(x[:, :1])
    weight[..., :h, :w] = lmbda * 255.0**2 / x.shape[1]  # MSE averages over the colour channels too
    start = y.to(device)
    best = torch.round(start)
    generator = torch.Generator(device).manual_seed(seed)
    fast, exact = low_precision(device), torch.autocast(device.type, enabled=False)
    with _search_mode(g_s):
        for own, context, inner, reached in _windows(*y.shape[-2:], model.tile, model.halo):
            target = x[_pixels(context, s)][_pixels(reached, s)]
            wgt = weight[_pixels(context, s)][_pixels(reached, s)]
            own_scales = scales[(..., *own)]

            def objective(y_own, autocast):
                """The tile's bits plus the weighted squared error of the pixels it reaches."""
                y_context = best[(..., *context)].clone()
                y_context[(..., *inner)] = y_own
                with autocast:
                    x_hat = g_s(y_context)[_pixels(reached, s)]
                rate = bits({"y": likelihood_bound(model.gaussian.likelihood(y_own, own_scales))})
                return rate + (wgt * (x_hat.float() - target) ** 2).sum()

            variable = start[(..., *own)].clone().requires_grad_(True)
            optimizer = torch.optim.Adam([variable], lr=LEARNING_RATE)
            for step in range(steps):
                tau = TAU_START * math.exp(-TAU_DECAY * step / steps)
                loss = objective(soft_round(variable, tau, generator), fast)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                candidate = torch.round(variable)
                if objective(candidate, exact) < objective(best[(..., *own)], exact):
                    best[(..., *own)] = candidate
    return best.cpu()
