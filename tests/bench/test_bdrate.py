import math

import numpy as np
import pytest

from sicodec.bench.bdrate import bd_rate, bd_rate_curves, pchip_integral, pchip_slopes, quality_axis
from sicodec.errors import SicodecError

BPP = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [27.0, 29.5, 32.5, 35.0, 38.5]


def res(bpp, **metrics):
    return {"name": "c", "description": "", "results": {"bpp": list(bpp), **{k: list(v) for k, v in metrics.items()}}}


def test_identical_curves_give_zero():
    assert bd_rate_curves(BPP, PSNR, BPP, PSNR) == pytest.approx(0, abs=1e-12)


def test_half_the_rate_for_the_same_quality_is_minus_50_percent():
    assert bd_rate_curves(BPP, PSNR, [r / 2 for r in BPP], PSNR) == pytest.approx(-50)
    assert bd_rate_curves(BPP, PSNR, [r * 2 for r in BPP], PSNR) == pytest.approx(100)


def test_partial_overlap_uses_the_shared_range():
    # ln R linear in quality: the test curve is the anchor at 0.7x rate, sampled over a shifted quality range
    q_a = np.linspace(28, 36, 5)
    q_t = np.linspace(32, 40, 4)
    rate = lambda q, f: f * np.exp(0.25 * (q - 30))  # noqa: E731
    assert bd_rate_curves(rate(q_a, 1), q_a, rate(q_t, 0.7), q_t) == pytest.approx(-30)


def test_order_of_points_does_not_matter():
    perm = [3, 0, 4, 2, 1]
    test = [r * 0.8 for r in BPP]
    expected = bd_rate_curves(BPP, PSNR, test, PSNR)
    assert bd_rate_curves([BPP[i] for i in perm], [PSNR[i] for i in perm], test, PSNR) == pytest.approx(expected)


def test_results_dicts_and_metric_names():
    a = res(BPP, **{"psnr-rgb": PSNR})
    b = res([r * 0.5 for r in BPP], **{"psnr-rgb": PSNR})
    assert bd_rate(a, b, "psnr") == pytest.approx(-50)
    assert bd_rate(a["results"], b["results"], "psnr-rgb") == pytest.approx(-50)
    assert bd_rate(b, a) == pytest.approx(100)


def test_lower_is_better_metrics_are_negated():
    lp = [0.30, 0.20, 0.12, 0.07, 0.04]
    np.testing.assert_allclose(quality_axis("lpips", lp), -np.array(lp))
    anchor = res(BPP, lpips=lp, dists=lp)
    half = res([r / 2 for r in BPP], lpips=lp, dists=lp)
    assert bd_rate(anchor, half, "lpips") == pytest.approx(-50)
    assert bd_rate(anchor, half, "dists") == pytest.approx(-50)
    # same rates, lower (better) LPIPS: the test codec needs fewer bits for a given LPIPS -> negative BD-rate
    better = res(BPP, lpips=[v * 0.8 for v in lp])
    assert bd_rate(anchor, better, "lpips") < 0
    assert bd_rate(better, anchor, "lpips") > 0


def test_ms_ssim_axis_is_in_decibels():
    np.testing.assert_allclose(quality_axis("ms-ssim", [0.9, 0.99, 0.999]), [10, 20, 30])
    ms = [0.90, 0.94, 0.965, 0.98, 0.99]
    assert bd_rate(res(BPP, **{"ms-ssim-rgb": ms}), res([r / 2 for r in BPP], **{"ms-ssim-rgb": ms}),
                   "ms-ssim") == pytest.approx(-50)
    with pytest.raises(SicodecError, match="MS-SSIM"):
        quality_axis("ms-ssim", [0.9, 1.0])


def test_non_overlapping_curves_raise():
    with pytest.raises(SicodecError, match="do not overlap"):
        bd_rate_curves([0.1, 0.2], [20, 22], [0.3, 0.4], [30, 32])
    with pytest.raises(SicodecError, match="do not overlap"):  # touching in one point is no range
        bd_rate_curves([0.1, 0.2], [20, 25], [0.3, 0.4], [25, 32])
    with pytest.raises(SicodecError, match="a.*against.*psnr.*do not overlap"):
        bd_rate(res([0.1, 0.2], **{"psnr-rgb": [20, 22]}) | {"name": "a"},
                res([0.3, 0.4], **{"psnr-rgb": [30, 32]}) | {"name": "b"})


@pytest.mark.parametrize("rates, qualities, match", [
    ([0.1], [30], "at least 2"),
    ([0.1, 0.2], [30, 30], "same quality"),
    ([0.0, 0.2], [30, 31], "rate <= 0"),
    ([0.1, 0.2], [30, float("nan")], "non-finite"),
    ([0.1, 0.2, 0.3], [30, 31], "rates but"),
])
def test_bad_curves_raise(rates, qualities, match):
    with pytest.raises(SicodecError, match=match):
        bd_rate_curves(rates, qualities, BPP, PSNR)
    with pytest.raises(SicodecError, match=match):
        bd_rate_curves(BPP, PSNR, rates, qualities)


def test_missing_metric_and_unknown_metric_raise():
    with pytest.raises(SicodecError, match="lpips"):
        bd_rate(res(BPP, **{"psnr-rgb": PSNR}), res(BPP, **{"psnr-rgb": PSNR}), "lpips")
    with pytest.raises(SicodecError, match="unknown metric"):
        bd_rate(res(BPP, **{"psnr-rgb": PSNR}), res(BPP, **{"psnr-rgb": PSNR}), "niqe")
    # FID is lower-is-better: a curve with lower FID at the same rates saves bits
    fid = [40.0, 30.0, 22.0, 16.0, 12.0]
    assert bd_rate(res(BPP, fid=fid), res(BPP, fid=[v * 0.8 for v in fid]), "fid") < 0


def test_pchip_is_exact_on_lines_and_does_not_overshoot():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(pchip_slopes(x, 2 * x + 1), 2)
    assert pchip_integral(x, 2 * x + 1, 0.5, 3.5) == pytest.approx((3.5**2 + 3.5) - (0.5**2 + 0.5))
    # a step: a monotone interpolant stays within [0, 1], so its integral over [0, 2] stays within [0, 2]
    xs, ys = np.array([0.0, 1.0, 1.1, 2.0]), np.array([0.0, 0.0, 1.0, 1.0])
    d = pchip_slopes(xs, ys)
    assert d[0] == 0 and d[-1] == 0 and np.all(d >= 0)
    assert 0 <= pchip_integral(xs, ys, 1.0, 1.1) <= 0.1


def test_pchip_matches_scipy():
    interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(3)
    for n in (2, 3, 4, 7):
        for _ in range(20):
            x = np.cumsum(rng.uniform(0.2, 2.0, n))
            y = rng.normal(size=n)
            ref = interpolate.PchipInterpolator(x, y)
            np.testing.assert_allclose(pchip_slopes(x, y), ref.derivative()(x), atol=1e-12)
            a, b = np.sort(rng.uniform(x[0], x[-1], 2))
            assert pchip_integral(x, y, a, b) == pytest.approx(float(ref.integrate(a, b)), abs=1e-12)
    assert math.isfinite(pchip_integral(x, y, x[0], x[-1]))
