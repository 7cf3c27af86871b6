"""Bit-exact evaluation of the small networks that produce entropy parameters.

Encoder and decoder must derive identical coding distributions, on any machine, thread count or
device. Floating-point convolutions do not promise that (the summation order changes the last bits),
so at coding time the entropy-parameter networks run in fixed point: weights and activations are
integers, held in float64. Every product and partial sum is an integer below 2**53, which float64
represents exactly, so the result does not depend on the order of the additions, on BLAS, on the
number of threads or on the device. Each layer clamps its input to a bound derived from its weights
that guarantees this; real activations never come near it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ModelError

ACT_BITS = 16  # fractional bits of activations
WEIGHT_BITS = 14  # fractional bits of weights
_EXACT_LIMIT = 2.0**52  # every partial sum stays below this
_LEAKY_BITS = 16


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """Integer symbols (any dtype) -> fixed-point activations (float64 holding integers)."""
    return x.to(torch.float64) * 2.0**ACT_BITS


def from_fixed(a: torch.Tensor) -> torch.Tensor:
    """Fixed-point activations -> float64 values (exact: division by a power of two)."""
    return a / 2.0**ACT_BITS


class _ExactLayer:
    """One quantised layer: callable on fixed-point activations."""

    def __init__(self, module: nn.Module):
        self.module = module
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            w = module.weight.detach().to(torch.float64)
            self.weight = torch.round(w * 2.0**WEIGHT_BITS)
            b = module.bias.detach().to(torch.float64) if module.bias is not None else torch.zeros(module.out_channels, dtype=torch.float64)
            self.bias = torch.round(b * 2.0 ** (WEIGHT_BITS + ACT_BITS))
            # Sum of |w| that reaches one output: Conv2d weight is (out, in, k, k), ConvTranspose2d (in, out, k, k).
            per_out = self.weight.abs().sum(dim=(1, 2, 3)) if isinstance(module, nn.Conv2d) else self.weight.abs().sum(dim=(0, 2, 3))
            worst = float(per_out.max()) if per_out.numel() else 1.0
            self.clamp = math.floor((_EXACT_LIMIT - float(self.bias.abs().max())) / max(worst, 1.0))
            if self.clamp < 2.0 ** (ACT_BITS + 8):
                raise ModelError("weights too large for exact fixed-point evaluation of the entropy parameters")
        elif isinstance(module, nn.LeakyReLU):
            self.slope = round(module.negative_slope * 2.0**_LEAKY_BITS)
        elif not isinstance(module, (nn.ReLU, nn.Identity)):
            raise ModelError(f"no exact evaluation for {type(module).__name__} layers")

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        m = self.module
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            a = a.clamp(-self.clamp, self.clamp)
            w = self.weight.to(a.device)
            if isinstance(m, nn.Conv2d):
                acc = F.conv2d(a, w, None, m.stride, m.padding, m.dilation, m.groups)
            else:
                acc = F.conv_transpose2d(a, w, None, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
            acc = acc + self.bias.to(a.device).view(1, -1, 1, 1)
            return torch.floor(acc / 2.0**WEIGHT_BITS)
        if isinstance(m, nn.ReLU):
            return a.clamp_min(0.0)
        if isinstance(m, nn.LeakyReLU):
            a = a.clamp(-(2.0**36), 2.0**36)
            return torch.where(a >= 0, a, torch.floor(a * self.slope / 2.0**_LEAKY_BITS))
        return a


class ExactSequential:
    """A fixed-point copy of an `nn.Sequential` of convolutions and (leaky) ReLUs."""

    def __init__(self, seq: nn.Sequential):
        self.layers = [_ExactLayer(m) for m in seq]

    @torch.no_grad()
    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        a = a.to(torch.float64)
        # cuDNN may pick FFT/Winograd algorithms, which are not exact; the native kernels are GEMMs.
        with torch.backends.cudnn.flags(enabled=False):
            for layer in self.layers:
                a = layer(a)
        return a


def param_version(module: nn.Module) -> tuple:
    """A key that changes whenever any parameter or buffer of `module` is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version, tuple(t.shape), t.dtype) for t in list(module.parameters()) + list(module.buffers()))


class Derived:
    """Caches a value derived from a module's weights; recomputed automatically when the weights change."""

    def __init__(self, fn):
        self.fn = fn
        self.key = None
        self.value = None

    def get(self, module: nn.Module):
        key = param_version(module)
        if key != self.key:
            self.value = self.fn()
            self.key = key
        return self.value
