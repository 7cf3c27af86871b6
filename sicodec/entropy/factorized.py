"""Ballé's deep factorized density: one learned, monotone cumulative per channel (used for z).

The cumulative of channel c is sigmoid(f_c(x)), where f_c is a small network of positive matrices
and monotone non-linearities (Ballé et al. 2018, appendix 6.1), so it is a valid CDF by construction.
The coding range of each channel is derived from the learned CDF itself (its tail quantiles, found by
bisection), so there is no auxiliary loss or optimiser for the user to forget.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from . import coding
from .coding import CodingTable, quantize_pmf
from .exact import Derived
from .ops import likelihood_bound, quantize

TAIL_MASS = 1e-6  # mass outside a channel's table, per side; such values are escaped, not clipped
MAX_TABLE = 4096  # symbols per channel table at most


class FactorizedDensity(nn.Module):
    """p(z) = prod_c p_c(z_c), each p_c a learned density convolved with a unit uniform."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self._tables = Derived(self._build_tables)

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for x of shape (C, 1, N); sigmoid of it is the cumulative."""
        params = ([F.softplus(m) for m in self.matrices], list(self.biases), [torch.tanh(f) for f in self.factors])
        return _logits(params, x)

    def likelihood(self, z_hat: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit bin around each value of z_hat (B, C, H, W)."""
        b, c, h, w = z_hat.shape
        v = z_hat.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        # Subtract on the side of the sigmoid where it is small, for precision in the tails.
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training/evaluation pass: (z_hat, likelihoods); noise when training, rounding otherwise."""
        z_hat = quantize(z, self.training)
        return z_hat, likelihood_bound(self.likelihood(z_hat))

    # --- coding -----------------------------------------------------------------------------------
    def tables(self) -> list[CodingTable]:
        """One integer coding table per channel, rebuilt whenever the weights change."""
        return self._tables.get(self)

    def compress(self, z_int: torch.Tensor) -> bytes:
        """Integer z of shape (1, C, H, W) -> bytes; channel c coded with table c."""
        symbols = z_int.to(torch.int64).cpu().numpy()
        return coding.encode(symbols, _channel_index(symbols.shape), self.tables())

    def decompress(self, data: bytes, shape: tuple[int, int, int, int]) -> torch.Tensor:
        symbols = coding.decode(data, _channel_index(shape), self.tables())
        return torch.from_numpy(symbols.reshape(shape)).to(torch.float32)

    @torch.no_grad()
    def _build_tables(self) -> list[CodingTable]:
        params = self._double_params()
        logit_tail = math.log(TAIL_MASS / (1 - TAIL_MASS))
        lo = _bisect(params, logit_tail)
        hi = _bisect(params, -logit_tail)
        tables = []
        for c in range(self.channels):
            a, b = math.floor(lo[c]), math.ceil(hi[c])
            if b - a + 1 > MAX_TABLE:
                mid = (a + b) // 2
                a, b = mid - MAX_TABLE // 2, mid + MAX_TABLE // 2 - 1
            xs = torch.arange(a, b + 1, dtype=torch.float64).view(1, 1, -1)
            one = [[t[c : c + 1] for t in group] for group in params]
            lower, upper = _logits(one, xs - 0.5), _logits(one, xs + 0.5)
            sign = -torch.sign(lower + upper)
            pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).reshape(-1).numpy()
            tables.append(CodingTable(a, quantize_pmf(pmf, 1.0 - pmf.sum())))
        return tables

    def _double_params(self):
        return (
            [F.softplus(m.detach().double()) for m in self.matrices],
            [b.detach().double() for b in self.biases],
            [torch.tanh(f.detach().double()) for f in self.factors],
        )


def _channel_index(shape) -> np.ndarray:
    return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)


def _logits(params, x: torch.Tensor) -> torch.Tensor:
    mats, biases, factors = params
    for i, (m, b) in enumerate(zip(mats, biases)):
        x = torch.matmul(m, x) + b
        if i < len(factors):
            x = x + factors[i] * torch.tanh(x)
    return x


def _bisect(params, target: float) -> list[float]:
    """Per channel, x with f_c(x) = target (f_c is strictly increasing), in float64."""
    channels = params[0][0].shape[0]
    lo = torch.full((channels, 1, 1), -1.0, dtype=torch.float64)
    hi = torch.full((channels, 1, 1), 1.0, dtype=torch.float64)
    for _ in range(24):  # widen the brackets up to +-2**24
        lo = torch.where(_logits(params, lo) > target, lo * 2, lo)
        hi = torch.where(_logits(params, hi) < target, hi * 2, hi)
    for _ in range(64):
        mid = (lo + hi) / 2
        below = _logits(params, mid) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return ((lo + hi) / 2).reshape(-1).tolist()
