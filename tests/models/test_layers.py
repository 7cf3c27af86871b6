"""GDN: the formula, and a parametrisation under which Adam can actually learn it."""

import torch

from sicodec.models.layers import GDN


def _reference(x, beta, gamma, inverse):
    norm = torch.sqrt(beta[None, :, None, None] + torch.einsum("ij,njhw->nihw", gamma, x * x))
    return x * norm if inverse else x / norm


def test_gdn_and_inverse_follow_the_formula():
    torch.manual_seed(0)
    for inverse in (False, True):
        gdn = GDN(6, inverse=inverse)
        with torch.no_grad():
            gdn.beta_sqrt.uniform_(0.5, 2.0)
            gdn.gamma_sqrt.uniform_(0.0, 0.5)
        x = torch.randn(2, 6, 5, 7)
        beta, gamma = gdn.beta_sqrt.detach() ** 2 + 1e-6, gdn.gamma_sqrt.detach() ** 2
        torch.testing.assert_close(gdn(x), _reference(x, beta, gamma, inverse), rtol=1e-5, atol=1e-6)


def test_gdn_learns_cross_channel_terms_within_a_few_hundred_adam_steps():
    """Fitting a GDN whose off-diagonal gamma is 0.05 from the default start (1e-4) must get most of the
    way there. The first parametrisation (softplus) could grow such an entry by only ~e^lr per step."""
    torch.manual_seed(0)
    target = GDN(4)
    with torch.no_grad():
        target.gamma_sqrt.copy_((torch.full((4, 4), 0.05) + torch.eye(4) * 0.05).sqrt())
    gdn = GDN(4)
    opt = torch.optim.Adam(gdn.parameters(), lr=1e-3)
    x = torch.randn(64, 4, 4, 4) * 3
    for _ in range(300):
        opt.zero_grad()
        torch.mean((gdn(x) - target(x).detach()) ** 2).backward()
        opt.step()
    gamma = gdn.gamma_sqrt.detach() ** 2
    off_diagonal = gamma[~torch.eye(4, dtype=torch.bool)]
    assert off_diagonal.mean() > 0.025
