"""Fit SIC slice networks by likelihood alone, on latents of frozen transforms.

In SVI training a slice network gets gradients from its slice's rate only (the fills it drives are
detached), so with g_a, h_a and h_s frozen its best weights are those that maximise the likelihood of
the rounded latents: what files actually cost. Latents are computed once, and the small networks then
train far faster than the whole model (e.g. a slice that was just split off, scripts/fit_slice_priors.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..codec import _to_tensor
from ..entropy.ops import likelihood_bound
from ..errors import SicodecError
from ..image import list_image_files, prepare
from .loss import bits


@dataclass
class Latents:
    """Rounded y and the hyper values mu_h, sigma_h of a set of images (same size each); `stride` is the
    model's image pixels per latent pixel."""

    y: torch.Tensor
    mu_h: torch.Tensor
    sigma_h: torch.Tensor
    stride: int

    @property
    def pixels(self) -> int:
        n, _, h, w = self.y.shape
        return n * h * w * self.stride**2

    def take(self, index) -> "Latents":
        """The images at `index` (a slice or index tensor)."""
        return Latents(self.y[index], self.mu_h[index], self.sigma_h[index], self.stride)


@torch.no_grad()
def encode_latents(model, folder, channels: int, size: int | None = None, batch: int = 8) -> list[Latents]:
    """The first `channels` channels of round(y), mu_h and sigma_h of every image in `folder`, each centre-
    cropped to `size` x `size` (or to a multiple of the model's stride when None); one Latents per image
    size, in order of first appearance."""
    m = model.stride
    groups: dict[tuple, list[torch.Tensor]] = {}
    for f in list_image_files(folder):
        x = _to_tensor(prepare(f).pixels, 1)[0]
        h, w = x.shape[1:]
        ch, cw = (size, size) if size else (h - h % m, w - w % m)
        if ch < m or cw < m or ch > h or cw > w:
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
        result.append(Latents(*(torch.cat(t) for t in zip(*parts)), model.latent_stride))
    return result


def slice_bits(model, latents: Latents, k: int) -> torch.Tensor:
    """Information content, in bits, of slice k of `latents` under the model's slice network k."""
    previous = list(latents.y[:, :model.offsets[k]].split(model.widths[:k], dim=1))
    out = model.slice_params[k](model._slice_input(k, latents.mu_h, latents.sigma_h, previous)).float()
    mean, scale = model._slice_gaussian(k, out, latents.mu_h, latents.sigma_h)
    return bits({"s": likelihood_bound(model.gaussian.likelihood(latents.y[:, model._channels(k)], scale, mean))})


@torch.no_grad()
def bpp_per_slice(model, groups: list[Latents], slices, batch: int = 8) -> list[float]:
    """Bits per pixel of each slice in `slices` over all images of `groups` (estimated from the discrete
    likelihoods)."""
    totals = [0.0] * len(slices)
    for latents in groups:
        for start in range(0, latents.y.shape[0], batch):
            part = latents.take(slice(start, start + batch))
            for i, k in enumerate(slices):
                totals[i] += float(slice_bits(model, part, k))
    return [t / sum(g.pixels for g in groups) for t in totals]


def fit_slice_networks(model, train: Latents, slices, steps: int, batch: int = 16, lr: float = 1e-4,
                       generator: torch.Generator | None = None, on_step=None) -> None:
    """Adam on the summed bits of `slices` (0-based) over random batches of `train`; only those slice
    networks change. `on_step(step, bpp)` is called after each step (logging, validation)."""
    params = [p for k in slices for p in model.slice_params[k].parameters()]
    chosen = {id(p) for p in params}
    frozen = [p for p in model.parameters() if id(p) not in chosen]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(params, lr=lr)
    n = train.y.shape[0]
    try:
        for step in range(1, steps + 1):
            part = train.take(torch.randint(0, n, (min(batch, n),), generator=generator))
            loss = sum(slice_bits(model, part, k) for k in slices) / part.pixels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(step, float(loss))
    finally:
        for p in frozen:
            p.requires_grad_(True)
