"""Fit a model's rate networks by likelihood alone, on the latents of its frozen transforms.

The rate networks only set what a file costs, never its pixels: the hyperprior's h_a, h_s and z
density, and SIC's slice networks (in SVI a slice network gets gradients from its slice's rate only,
the fills it drives being detached). With g_a frozen, their best weights are those that maximise the
likelihood of the rounded latents that files actually carry, not of the noisy ones of training (the
gap is large: -13 % rate for a hyperprior, see docs/training.md). Latents are computed once and the
small networks then train far faster than the whole model (scripts/fit_priors.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..codec import _to_tensor
from ..entropy.ops import bits, likelihood_bound, quantize, round_straight_through
from ..errors import SicodecError
from ..image import list_image_files, prepare


@dataclass
class Latents:
    """g_a's float latents y of a set of images (same size each), the model's image pixels per latent
    pixel and, when kept, the images themselves (uint8); files carry round(y) and z = round(h_a(y)),
    which `rate_bits` derives."""

    y: torch.Tensor
    stride: int
    x: torch.Tensor | None = None

    @property
    def pixels(self) -> int:
        n, _, h, w = self.y.shape
        return n * h * w * self.stride**2

    def take(self, index) -> "Latents":
        """The images at `index` (a slice or index tensor)."""
        return Latents(self.y[index], self.stride, None if self.x is None else self.x[index])


@torch.no_grad()
def encode_latents(model, folder, size: int | None = None, batch: int = 8, keep_images: bool = False) -> list[Latents]:
    """The latents of every image of `folder`, centre-cropped to `size` x `size` (or to a multiple of the
    model's stride when None), with the crops themselves when `keep_images`; one Latents per image size,
    in order of first appearance."""
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
        y = torch.cat([model.g_a(torch.stack(images[i:i + batch])).float() for i in range(0, len(images), batch)])
        x = (torch.stack(images) * 255).round().to(torch.uint8) if keep_images else None
        result.append(Latents(y, model.latent_stride, x))
    return result


@contextmanager
def training_only(model, params: list[torch.Tensor]):
    """Within the block only `params` get gradients; the rest of `model` is frozen."""
    chosen = {id(p) for p in params}
    frozen = [p for p in model.parameters() if id(p) not in chosen and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def rate_networks(model, slices=None, hyper: bool = False) -> list[nn.Module]:
    """The networks a fit changes: h_a, h_s and the z density (always for the hyperprior; with `hyper`
    for SIC), and SIC's slice networks `slices` (0-based)."""
    nets = [model.h_a, model.h_s, model.entropy_z] if hyper or model.arch == "hyperprior" else []
    return nets + [model.slice_params[k] for k in (slices or [])]


def fitted_parts(slices, hyper: bool):
    """The `slices` argument of `rate_bits` for the parts whose rate a fit changes: all (None) when the
    hyper networks are fitted, since they set every part's rate."""
    return None if hyper else slices


def rate_bits(model, latents: Latents, slices=None, training: bool = False) -> dict[str, torch.Tensor]:
    """Information content, in bits, of the parts of a file for `latents`: "z", then the hyperprior's
    "y" or SIC's "slice k" for the 0-based `slices` (all when None). z is rounded (noisy in training,
    for its density's gradients); the hyper networks read round(z) with straight-through gradients."""
    z = model.side_latent(latents.y)
    result = {"z": bits({"z": likelihood_bound(model.entropy_z.likelihood(quantize(z, training)))})}
    hyper = model.hyper_params(round_straight_through(z))
    y = torch.round(latents.y)
    if model.arch == "hyperprior":
        result["y"] = bits({"y": likelihood_bound(model.gaussian.likelihood(y, hyper))})
        return result
    mu_h, sigma_h = hyper
    previous = list(y.split(model.widths, dim=1))
    for k in range(model.slices) if slices is None else slices:
        mean, scale = model.slice_gaussian(k, mu_h, sigma_h, previous)
        lik = model.gaussian.likelihood(previous[k], scale, mean)
        result[f"slice {k + 1}"] = bits({"s": likelihood_bound(lik)})
    return result


@torch.no_grad()
def bpp_per_part(model, groups: list[Latents], slices=None, batch: int = 8) -> dict[str, float]:
    """Bits per pixel of each part (see `rate_bits`) over all images of `groups`, estimated from the
    discrete likelihoods of what a file codes."""
    totals: dict[str, float] = {}
    for latents in groups:
        for start in range(0, latents.y.shape[0], batch):
            for name, b in rate_bits(model, latents.take(slice(start, start + batch)), slices).items():
                totals[name] = totals.get(name, 0.0) + float(b)
    pixels = sum(g.pixels for g in groups)
    return {name: t / pixels for name, t in totals.items()}


def fit_rate_networks(model, train: Latents, steps: int, slices=None, hyper: bool = False, batch: int = 16,
                      lr: float = 1e-4, generator: torch.Generator | None = None, on_step=None) -> None:
    """Adam on the bits of random batches of `train`; only `rate_networks(model, slices, hyper)` change,
    and the loss counts every part they affect. `on_step(step, bpp)` is called after each step."""
    params = [p for net in rate_networks(model, slices, hyper) for p in net.parameters()]
    parts = fitted_parts(slices, hyper)
    optimizer = torch.optim.Adam(params, lr=lr)
    n = train.y.shape[0]
    with training_only(model, params):
        for step in range(1, steps + 1):
            part = train.take(torch.randint(0, n, (min(batch, n),), generator=generator))
            loss = sum(rate_bits(model, part, parts, training=True).values()) / part.pixels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(step, float(loss.detach()))
