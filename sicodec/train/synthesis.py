"""Fine-tune a hyperprior's synthesis g_s on the latents files carry, everything else frozen.

Training decodes y plus uniform noise; a file decodes round(y), which g_s never saw. With g_a and
the rate networks frozen, every file keeps its bytes and only its decoded pixels change, so the best
g_s is the one with the least squared error on round(y) (+0.10-0.15 dB on Kodak for the shipped
hyperprior in 750 steps, docs/training.md). Latents are computed once (`encode_latents(..., keep_images=True)`).
"""

from __future__ import annotations

import torch

from ..codec import _to_pixels
from ..metrics.classic import psnr
from ..models.refine import low_precision
from .priors import Latents, training_only


def synthesis_error(model, latents: Latents) -> torch.Tensor:
    """Mean squared error, on the [0, 1] scale, of g_s(round(y)) against the images."""
    with low_precision(latents.y.device):
        x_hat = model.g_s(torch.round(latents.y))
    return torch.mean((x_hat.float() - latents.x.float() / 255) ** 2)


@torch.no_grad()
def synthesis_psnr(model, groups: list[Latents]) -> float:
    """Mean PSNR (dB, 8-bit pixels as a file decodes them) of g_s(round(y)) over all images of `groups`."""
    psnrs = []
    for latents in groups:
        for i in range(latents.y.shape[0]):
            image = latents.x[i].permute(1, 2, 0).numpy()
            psnrs.append(psnr(_to_pixels(model.g_s(torch.round(latents.y[i:i + 1])), *image.shape[:2]), image))
    return sum(psnrs) / len(psnrs)


def fit_synthesis(model, train: Latents, steps: int, batch: int = 8, lr: float = 1e-5,
                  generator: torch.Generator | None = None, on_step=None) -> None:
    """Adam on `synthesis_error` of random batches of `train` (under bf16 autocast where supported); only
    g_s changes. `on_step(step, mse)` is called after each step."""
    params = list(model.g_s.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    n = train.y.shape[0]
    with training_only(model, params):
        for step in range(1, steps + 1):
            loss = synthesis_error(model, train.take(torch.randint(0, n, (min(batch, n),), generator=generator)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if on_step is not None:
                on_step(step, float(loss.detach()))
