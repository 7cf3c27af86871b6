"""The SVI objective: level weights, schedules, and every term against a direct computation."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import make_tiny_sic
from sicodec.errors import SicodecError
from sicodec.train.svi import SVILoss, paper_weights

LPIPS_FILE = Path(__file__).resolve().parents[3] / "shared" / "weights" / "lpips_alex.safetensors"


def test_paper_weights_for_sixteen_levels_and_their_generalisation():
    for l in range(1, 17):
        w = paper_weights(l, 16)
        assert w.distortion == pytest.approx(128 * l)
        assert w.perception == pytest.approx(2 ** (5 - l / 8))
        assert w.rate == pytest.approx(2 ** (6 - 3 * l / 8))
    assert paper_weights(16, 16) == paper_weights(8, 8)
    full = paper_weights(4, 4)
    assert (full.rate, full.distortion, full.perception) == pytest.approx((1, 2048, 8))
    assert paper_weights(2, 8) == paper_weights(4, 16)


def test_rate_tilt_scales_the_low_levels_rate_weight_and_leaves_the_top_level():
    plain, tilted = SVILoss(5), SVILoss(5, rate_tilt=16)
    factors = [tilted.level_weights(l).rate / plain.level_weights(l).rate for l in range(1, 6)]
    assert factors == pytest.approx([16, 8, 4, 2, 1])  # 16 at level 1, geometric down to 1 at the top
    for l in range(1, 6):
        assert tilted.level_weights(l).distortion == plain.level_weights(l).distortion
        assert tilted.level_weights(l).perception == plain.level_weights(l).perception
    assert SVILoss(5, rate_tilt=1).level_weights(1) == paper_weights(1, 5)
    rows = [{"point": 1, "bpp": 0.1, "psnr-rgb": 25.0}, {"point": 5, "bpp": 1.0, "psnr-rgb": 35.0}]
    assert tilted.validation_score(rows) - plain.validation_score(rows) == pytest.approx(15 * paper_weights(1, 5).rate * 0.1 / 2)
    for bad in (0, -1, float("nan")):
        with pytest.raises(SicodecError, match="rate tilt"):
            SVILoss(5, rate_tilt=bad)


def test_rolling_schedule_walks_down_from_the_top_level():
    loss = SVILoss(4)
    assert [loss.level_for(s) for s in range(9)] == [4, 3, 2, 1, 4, 3, 2, 1, 4]
    rnd = SVILoss(4, schedule="random", generator=torch.Generator().manual_seed(0))
    assert {rnd.level_for(s) for s in range(50)} == {1, 2, 3, 4}


def _bits(lik):
    return -torch.log2(lik).sum()


@pytest.fixture
def lpips():
    if not LPIPS_FILE.is_file():
        pytest.skip(f"{LPIPS_FILE} not available")
    from sicodec.metrics.lpips import LPIPS

    return LPIPS.from_weights(LPIPS_FILE)


def test_terms_match_a_direct_computation(lpips):
    model = make_tiny_sic(seed=2)  # eval mode: rounding, so forward passes are repeatable
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    loss = SVILoss(4, lpips=lpips, samples=2, alpha=0.3, warmup_steps=10, generator=torch.Generator().manual_seed(5))
    got = loss(model, x, step=2)  # rolling: level 2
    assert got["level"] == 2

    with torch.no_grad():
        out = model(x)
        px = 2 * 64 * 64
        slice_bpp = torch.stack([_bits(out["likelihoods"][f"y{k}"]) for k in range(1, 5)]) / px
        z_bpp = _bits(out["likelihoods"]["z"]) / px
        gen = torch.Generator().manual_seed(5)
        c = model.offsets[2]
        mixes = [torch.cat([out["y_hat"][:, :c], torch.round(out["mu_h"][:, c:] + torch.rand(out["mu_h"][:, c:].shape, generator=gen, dtype=torch.float64).float() * 4 - 2)], 1)
                 for _ in range(2)]
        recons = [model.g_s(m) for m in mixes]
        w = paper_weights(2, 4)
        level = (w.rate * (z_bpp + slice_bpp[:2].sum())
                 + w.distortion * sum(F.mse_loss(r, x) for r in recons) / 2
                 + w.perception * sum(lpips(r, x).mean() for r in recons) / 2)
        full = 1 * (z_bpp + slice_bpp.sum()) + 2048 * F.mse_loss(out["x_hat"], x) + 8 * lpips(out["x_hat"], x).mean()
        re = [model.g_a(r) for r in [out["x_hat"], *recons]]
        d_syn = sum(F.mse_loss(r[:, :c], out["y_hat"][:, :c]) for r in re) / 3
        d_sam = sum(F.mse_loss(r[:, c:], m[:, c:]) for r, m in zip(re[1:], mixes)) / 2
        warm = slice_bpp.std() - slice_bpp.min()
    for name, want in [("L_level", level), ("L_full", full), ("D_syn", d_syn), ("D_sam", d_sam), ("warmup", warm)]:
        assert float(got[name].detach()) == pytest.approx(float(want), rel=1e-4), name
    assert float(got["loss"].detach()) == pytest.approx(float(0.3 * level + 0.7 * full + d_syn + d_sam + warm), rel=1e-4)


def test_top_level_has_no_sampling_term_and_gradients_reach_every_part():
    model = make_tiny_sic(seed=3).train()
    loss = SVILoss(4, lpips=None)
    result = loss(model, torch.rand(1, 3, 64, 64), step=0)  # level 4 = everything transmitted
    assert result["level"] == 4 and float(result["D_sam"]) == 0
    result["loss"].backward()
    for part in (model.g_a, model.g_s, model.h_a, model.h_s, model.slice_params, model.entropy_z):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_training_loop_runs_sic_with_the_svi_objective(tmp_path, lpips):
    import numpy as np
    from PIL import Image
    from sicodec.train.loop import train

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{i}.png")
    ckpt = train("sic", str(d), str(tmp_path / "run"), 2, lmbda=0, batch=1, crop=64, log_every=1,
                 config={"M": 16, "slices": 2, "N": 8, "hyper": 8, "param_hidden": 8},
                 loss_options={"lpips_weights": LPIPS_FILE, "warmup_steps": 1, "rate_tilt": 2.0})
    state = torch.load(ckpt, weights_only=False)
    assert state["step"] == 2
    assert state["recipe"]["loss_options"] == {"warmup_steps": 1, "rate_tilt": 2.0}


def test_training_ancestral_fill_agrees_with_the_decoders():
    """The float fill the SVI loss can train with is the decoder's `ancestral` fill: the same draws from
    the same seed, around means and scales that differ only by the decoder's fixed-point rounding."""
    model = make_tiny_sic(seed=4)
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 128)
    level = 1
    with torch.no_grad():
        out = model(x)
        trained = model.ancestral_fill(out["y_hat"], out["mu_h"], out["sigma_h"], level, torch.Generator().manual_seed(9))
        y = model.g_a(x)
        y_int = torch.round(y)
        mu_e, sigma_e = model._exact_hyper(torch.round(model.side_latent(y)))
        decoded = list(y_int.split(model.widths, dim=1))[:level]
        gen = torch.Generator().manual_seed(9)
        for k in range(level, model.slices):
            decoded.append(model._predict_slice(k, mu_e, sigma_e, decoded, gen).float())
        exact = torch.cat(decoded[level:], dim=1)
    assert trained.shape == exact.shape and torch.equal(trained, torch.round(trained))
    assert (trained == exact).float().mean() > 0.99
    assert trained.std() > 0  # a sample, not a constant

    with torch.no_grad():  # temperature None: the predicted means, the float version of `mean`
        means = model.ancestral_fill(out["y_hat"], out["mu_h"], out["sigma_h"], level, temperature=None)
        decoded = decoded[:level]
        for k in range(level, model.slices):
            decoded.append(model._predict_slice(k, mu_e, sigma_e, decoded).float())
    assert torch.allclose(means, torch.cat(decoded[level:], dim=1), atol=1e-2)
    assert not torch.equal(means, torch.round(means))


def test_svi_loss_trains_with_the_fill_it_is_given():
    model = make_tiny_sic(seed=5)
    x = torch.rand(1, 3, 64, 64)
    level = SVILoss(4).level_for(3)
    got = SVILoss(4, fill="ancestral", generator=torch.Generator().manual_seed(3))(model, x, step=3)
    with torch.no_grad():
        out = model(x)
        rest = model.ancestral_fill(out["y_hat"], out["mu_h"], out["sigma_h"], level, torch.Generator().manual_seed(3))
        recon = model.g_s(torch.cat([out["y_hat"][:, :model.offsets[level]], rest], dim=1))
    w = paper_weights(level, 4)
    bpp = float(got["bpp"].detach())
    assert float(got["L_level"].detach()) == pytest.approx(w.rate * bpp + w.distortion * float(F.mse_loss(recon, x)), rel=1e-5)
    top = SVILoss(4, fill="ancestral")(model, x, step=0)  # the top level: nothing to fill
    assert top["level"] == 4 and float(top["D_sam"]) == 0 and torch.isfinite(top["loss"])
    with pytest.raises(SicodecError, match="unknown training fill"):
        SVILoss(4, fill="mean")
