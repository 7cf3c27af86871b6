"""Conditional Gaussian entropy model for y: N(mean, scale) convolved with a unit uniform.

Training uses the continuous scale (and mean). Coding snaps them to fixed grids: the scale to one of
`NUM_SCALES` log-spaced values, the mean to an integer offset plus one of `MEAN_STEPS` fractions.
The grid choice is made by exact integer comparisons on the fixed-point output of the exact
entropy-parameter network, and the tables depend on the grids only, so they are built once per
process and are identical for every model.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from . import coding
from .coding import CodingTable, quantize_pmf
from .exact import ACT_BITS
from .ops import likelihood_bound, lower_bound, quantize

SCALE_MIN = 0.11
SCALE_MAX = 256.0
NUM_SCALES = 128
MEAN_STEPS = 8  # means are coded to the nearest 1/8 (0 included, so zero-mean models are exact)
TAIL_SIGMAS = 7.0  # table half-width in scales; values beyond are escaped, never clipped


def scale_grid() -> np.ndarray:
    return SCALE_MIN * (SCALE_MAX / SCALE_MIN) ** (np.arange(NUM_SCALES) / (NUM_SCALES - 1))


@lru_cache(maxsize=1)
def _scale_thresholds() -> torch.Tensor:
    """Fixed-point boundaries between neighbouring grid scales (geometric midpoints), as integers."""
    g = scale_grid()
    return torch.tensor(np.round(np.sqrt(g[:-1] * g[1:]) * 2.0**ACT_BITS), dtype=torch.float64)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.special.erfc(-x * (1 / math.sqrt(2)))


@lru_cache(maxsize=1)
def gaussian_tables() -> tuple[CodingTable, ...]:
    """Table (scale s, mean step m) sits at index s * MEAN_STEPS + m; it codes y - offset for a
    Gaussian centred at m / MEAN_STEPS, where offset + m / MEAN_STEPS is the quantised mean."""
    tables = []
    for sigma in scale_grid():
        half = int(math.ceil(TAIL_SIGMAS * sigma)) + 1
        k = torch.arange(-half, half + 2, dtype=torch.float64)
        for m in range(MEAN_STEPS):
            mu = m / MEAN_STEPS
            d = (k - mu).abs()
            pmf = (_std_normal_cdf((0.5 - d) / sigma) - _std_normal_cdf((-0.5 - d) / sigma)).numpy()
            tables.append(CodingTable(-half, quantize_pmf(pmf, 1.0 - pmf.sum())))
    return tuple(tables)


def coding_params(scale_fixed: torch.Tensor, mean_fixed: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact fixed-point scales (and means) -> (table index, integer offset) per element.

    The symbol to code is y - offset.
    """
    scale_idx = torch.searchsorted(_scale_thresholds().to(scale_fixed.device), scale_fixed.contiguous(), right=True)
    if mean_fixed is None:
        q = torch.zeros_like(scale_fixed)
    else:  # nearest multiple of 1/MEAN_STEPS; exact, as the scaling is by powers of two
        q = torch.floor(mean_fixed * MEAN_STEPS / 2.0**ACT_BITS + 0.5)
    offset = torch.floor(q / MEAN_STEPS)
    step = q - offset * MEAN_STEPS
    index = scale_idx * MEAN_STEPS + step.long()
    return index.cpu().numpy().astype(np.int64).ravel(), offset.cpu().numpy().astype(np.int64).ravel()


class GaussianConditional(nn.Module):
    """Likelihoods of y under N(mean, scale) * U(-1/2, 1/2), for training and rate estimates."""

    def likelihood(self, y_hat: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        scales = lower_bound(scales, SCALE_MIN)
        d = (y_hat - means).abs() if means is not None else y_hat.abs()
        return _std_normal_cdf((0.5 - d) / scales) - _std_normal_cdf((-0.5 - d) / scales)

    def forward(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None):
        """(y_hat, likelihoods): noise when training, rounding otherwise."""
        y_hat = quantize(y, self.training)
        return y_hat, likelihood_bound(self.likelihood(y_hat, scales, means))

    def compress(self, y_int: torch.Tensor, table_index: np.ndarray, offset: np.ndarray) -> bytes:
        """Integer y -> bytes, with the per-element tables and offsets from `coding_params`."""
        symbols = y_int.to(torch.int64).cpu().numpy().ravel() - offset
        return coding.encode(symbols, table_index, gaussian_tables())

    def decompress(self, data: bytes, shape, table_index: np.ndarray, offset: np.ndarray) -> torch.Tensor:
        symbols = coding.decode(data, table_index, gaussian_tables()) + offset
        return torch.from_numpy(symbols.reshape(tuple(shape))).to(torch.float32)
