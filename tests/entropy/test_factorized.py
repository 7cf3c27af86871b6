"""The deep factorized density: a valid distribution, derived tables that never go stale, bounds."""

import numpy as np
import torch

from sicodec.entropy import coding
from sicodec.entropy.factorized import FactorizedDensity


def _density(seed=0, channels=4):
    torch.manual_seed(seed)
    d = FactorizedDensity(channels)
    with torch.no_grad():
        for b in d.biases:
            b.add_(torch.randn_like(b))
    return d.eval()


def test_likelihoods_sum_to_one_over_integers():
    d = _density()
    z = torch.arange(-400, 401, dtype=torch.float32).view(1, 1, -1, 1).repeat(1, 4, 1, 1)
    total = d.likelihood(z).sum(dim=(0, 2, 3))
    assert torch.allclose(total, torch.ones(4), atol=1e-4)


def test_training_adds_noise_and_eval_rounds():
    d = _density()
    z = torch.full((2, 4, 3, 3), 0.3)
    assert torch.equal(d.eval()(z)[0], torch.zeros_like(z))
    noisy = d.train()(z)[0]
    assert not torch.equal(noisy, z) and (noisy - z).abs().max() <= 0.5


def test_tables_cover_the_bulk_of_the_mass():
    d = _density()
    for c, t in enumerate(d.tables()):
        assert t.freqs[-1] <= 2  # escape mass ~ 2e-6 of 2**16
        xs = torch.arange(t.offset, t.offset + t.size, dtype=torch.float32)
        lik = d.likelihood(xs.view(1, 1, -1, 1).repeat(1, 4, 1, 1))[0, c, :, 0]
        assert float(lik.detach().sum()) > 0.999


def test_tables_follow_weight_changes_without_an_update_call():
    d = _density()
    before = coding.tables_checksum(d.tables())
    with torch.no_grad():
        d.biases[0].add_(3.0)  # in-place, as an optimiser step does
    after = coding.tables_checksum(d.tables())
    assert after != before
    d.load_state_dict(_density().state_dict())
    assert coding.tables_checksum(d.tables()) == before


def test_round_trip_and_information_bound():
    """Coded size within 0.5 % of the model's own (float) information content on its own samples."""
    d = _density(channels=8)
    rng = np.random.default_rng(0)
    # Draw from each channel's table distribution (what the model believes z looks like).
    z = np.empty((1, 8, 64, 64), dtype=np.int64)
    for c, t in enumerate(d.tables()):
        p = t.freqs[:-1] / t.freqs[:-1].sum()
        z[0, c] = rng.choice(t.size, size=(64, 64), p=p) + t.offset
    zt = torch.from_numpy(z).float()
    data = d.compress(zt)
    assert torch.equal(d.decompress(data, zt.shape), zt)
    estimate = float(-torch.log2(d.likelihood(zt).detach()).sum())
    assert 8 * len(data) <= estimate * 1.005 + 64
