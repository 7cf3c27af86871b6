"""The conditional Gaussian: exact likelihoods, grids, information bounds for scale and mean-scale."""

import math

import numpy as np
import torch

from sicodec.entropy.exact import ACT_BITS
from sicodec.entropy.gaussian import (
    MEAN_STEPS, NUM_SCALES, GaussianConditional, coding_params, gaussian_tables, scale_grid,
)


def _phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def test_likelihood_is_the_gaussian_mass_of_the_unit_bin():
    g = GaussianConditional().eval()
    y = torch.tensor([0.0, 1.0, -3.0, 7.0])
    s = torch.tensor([0.5, 2.0, 3.0, 1.0])
    m = torch.tensor([0.2, -0.4, 0.0, 6.5])
    lik = g.likelihood(y, s, m)
    for i in range(4):
        d = float(y[i] - m[i])
        want = _phi((d + 0.5) / float(s[i])) - _phi((d - 0.5) / float(s[i]))
        assert abs(float(lik[i]) - want) < 1e-6


def test_scale_index_picks_the_nearest_grid_scale_in_log_terms():
    grid = scale_grid()
    values = np.exp(np.linspace(np.log(0.05), np.log(400), 500))
    idx, offset = coding_params(torch.tensor(np.round(values * 2**ACT_BITS)))
    nearest = np.abs(np.log(grid)[None, :] - np.log(np.clip(values, grid[0], grid[-1]))[:, None]).argmin(1)
    assert (np.abs(idx // MEAN_STEPS - nearest) <= 1).all() and (offset == 0).all()
    assert idx.max() < NUM_SCALES * MEAN_STEPS


def test_means_map_to_offset_and_step():
    mean = torch.tensor([0.0, 0.06, 0.07, 1.5, -0.3, -2.0])
    scale = torch.ones(6)
    idx, offset = coding_params(scale * 2**ACT_BITS, torch.round(mean * 2**ACT_BITS))
    q = np.floor(mean.numpy() * MEAN_STEPS + 0.5)
    assert np.array_equal(offset + (idx % MEAN_STEPS) / MEAN_STEPS, q / MEAN_STEPS)


def _info_bound(with_means):
    g = GaussianConditional().eval()
    rng = np.random.default_rng(7)
    n = 200_000
    scales = torch.tensor(np.exp(rng.uniform(np.log(0.2), np.log(60), n)))
    means = torch.tensor(rng.normal(0, 5, n)) if with_means else None
    y = torch.round(torch.normal(means if with_means else torch.zeros(n, dtype=torch.float64), scales))
    s_fix = torch.round(scales * 2**ACT_BITS)
    m_fix = torch.round(means * 2**ACT_BITS) if with_means else None
    idx, off = coding_params(s_fix, m_fix)
    data = g.compress(y, idx, off)
    assert torch.equal(g.decompress(data, y.shape, idx, off).double(), y)
    estimate = float(-torch.log2(g.likelihood(y, scales, means)).sum())
    return 8 * len(data), estimate


def test_information_bound_scale_only():
    actual, estimate = _info_bound(False)
    assert actual <= estimate * 1.005 + 64


def test_information_bound_mean_scale():
    actual, estimate = _info_bound(True)
    assert actual <= estimate * 1.005 + 64


def test_tables_are_the_same_every_time():
    """The tables depend on constants only; this pins them, so a platform that derives others fails here."""
    from sicodec.entropy.coding import tables_checksum

    assert len(gaussian_tables()) == NUM_SCALES * MEAN_STEPS
    assert tables_checksum(list(gaussian_tables())) == PINNED_GAUSSIAN_CRC


PINNED_GAUSSIAN_CRC = 3811823489
