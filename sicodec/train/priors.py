"""Fit SIC slice networks by likelihood alone, on latents of frozen transforms.

In SVI training a slice network gets gradients from its slice's rate only (the fills it drives are
detached), so with g_a, h_a and h_s frozen its best weights are those that maximise the likelihood of
the rounded latents: what files actually cost. Latents are computed once, and the small networks then
train far faster than the whole model (e.g. a slice that was just split off, scripts/fit_slice_priors.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import SicodecError
from ..image import list_image_files, prepare


@dataclass
class Latents:
    """Rounded y and the hyper values mu_h, sigma_h of a set of images (same size each)."""

    y: torch.Tensor
    mu_h: torch.Tensor
    sigma_h: torch.Tensor

    @property
    def pixels(self) -> int:
        n, _, h, w = self.y.shape
        return n * h * w * 16 * 16  # 16x down-sampling


@torch.no_grad()
def encode_latents(model, folder, channels: int, size: int | None = None, batch: int = 8) -> list[Latents]:
    """The first `channels` channels of round(y), mu_h and sigma_h of every image in `folder`, each centre-
    cropped to `size` x `size` (or to a multiple of 64, the models' stride, when None); one Latents per
    image size, in order of first appearance."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for f in list_image_files(folder):
        x = torch.from_numpy(prepare(f).pixels).permute(2, 0, 1).float() / 255.0
        h, w = x.shape[1:]
        ch, cw = (size, size) if size else (h - h % 64, w - w % 64)
        if ch < 64 or cw < 64 or ch > h or cw > w:
            raise SicodecError(f"{f}: {w}x{h} pixels, too small for {cw}x{ch} crops")
        top, left = (h - ch) // 2, (w - cw) // 2
        groups.setdefault((ch, cw), []).append(x[:, top:top + ch, left:left + cw])
    model.eval()
    result = []
    for images in groups.values():
        parts = []
        for start in range(0, len(images), batch):
            y = model.g_a(torch.stack(images[start:start + batch])).float()
            mu, sigma = model._split_hyper(model.h_s(torch.round(model.h_a(y))).float())
            parts.append((torch.round(y[:, :channels]), mu[:, :channels], sigma[:, :channels]))
        result.append(Latents(*(torch.cat(t) for t in zip(*parts))))
    return result


def slice_bits(model, latents: Latents, k: int) -> torch.Tensor:
    """Information content, in bits, of slice k of `latents` under the model's slice network k."""
    previous = list(latents.y[:, :model.offsets[k]].split(model.widths[:k], dim=1))
    out = model.slice_params[k](model._slice_input(k, latents.mu_h, latents.sigma_h, previous)).float()
    mean, scale = model._slice_gaussian(k, out, latents.mu_h, latents.sigma_h)
    lik = model.gaussian.likelihood(latents.y[:, model._channels(k)], scale, mean)
    return -torch.log(lik.clamp_min(1e-9)).sum() / math.log(2)


@torch.no_grad()
def bpp_per_slice(model, groups: list[Latents], slices, batch: int = 8) -> list[float]:
    """Bits per pixel of each slice in `slices` over all images of `groups` (estimated from the discrete
    likelihoods)."""
    totals = [0.0] * len(slices)
    for latents in groups:
        for start in range(0, latents.y.shape[0], batch):
            part = Latents(*(t[start:start + batch] for t in (latents.y, latents.mu_h, latents.sigma_h)))
            for i, k in enumerate(slices):
                totals[i] += float(slice_bits(model, part, k))
    return [t / sum(g.pixels for g in groups) for t in totals]


def fit_slice_networks(model, train: Latents, slices, steps: int, batch: int = 16, lr: float = 1e-4,
                       generator: torch.Generator | None = None, on_step=None) -> None:
    """Adam on the summed bits of `slices` (0-based) over random batches of `train`; only those slice
    networks change. `on_step(step, bpp)` is called after each step (logging, validation)."""
    params = [p for k in slices for p in model.slice_params[k].parameters()]
    frozen = [p for p in model.parameters() if all(p is not q for q in params)]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(params, lr=lr)
    n = train.y.shape[0]
    try:
        for step in range(1, steps + 1):
            idx = torch.randint(0, n, (min(batch, n),), generator=generator)
            part = Latents(train.y[idx], train.mu_h[idx], train.sigma_h[idx])
            loss = sum(slice_bits(model, part, k) for k in slices) / part.pixels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(step, float(loss))
    finally:
        for p in frozen:
            p.requires_grad_(True)
