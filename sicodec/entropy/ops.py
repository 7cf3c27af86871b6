"""Small differentiable operations shared by the entropy models."""

from __future__ import annotations

import math

import torch

LIKELIHOOD_MIN = 1e-9


class _LowerBound(torch.autograd.Function):
    """max(x, bound), letting gradients through where they push x back above the bound."""

    @staticmethod
    def forward(ctx, x, bound: float):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)).to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


def likelihood_bound(p: torch.Tensor) -> torch.Tensor:
    """Likelihoods never below 1e-9, so that -log2 stays finite (about 30 bits at most)."""
    return lower_bound(p, LIKELIHOOD_MIN)


def quantize(x: torch.Tensor, training: bool) -> torch.Tensor:
    """Additive uniform noise U(-1/2, 1/2) in training (a differentiable proxy), rounding otherwise."""
    if training:
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    return torch.round(x)


def round_straight_through(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward: what a decoder sees, with gradients for the encoder."""
    return x + (torch.round(x) - x).detach()


def bits(likelihoods: dict) -> torch.Tensor:
    """Total information content, in bits, of all latents in `likelihoods` (a dict of tensors)."""
    return sum(-torch.log(lik.float()).sum() for lik in likelihoods.values()) / math.log(2)
