"""Bjontegaard delta rate (BD-rate): the average rate difference between two rate-quality curves, in percent.

Method. Each curve's log-rate ln(bpp) is taken as a function of quality Q and interpolated with a monotone
piecewise cubic (PCHIP: cubic Hermite pieces whose slopes follow Fritsch & Carlson 1980, so the interpolant never
overshoots the data). Both interpolants are integrated exactly over the quality range the curves share,
[max(min Q_a, min Q_t), min(max Q_a, max Q_t)], and

    BD-rate = (exp(mean over that range of [ln R_test(Q) - ln R_anchor(Q)]) - 1) * 100 %.

Negative means the test codec needs fewer bits than the anchor for the same quality. Bjontegaard's original
(VCEG-M33, 2001) fitted one cubic polynomial to four points; the piecewise cubic is the later, more robust choice
for curves of any length. The slopes are computed here (no scipy needed); the tests check them against scipy.

Quality axes:
  psnr     "psnr-rgb" in dB, as is.
  ms-ssim  "ms-ssim-rgb" turned into dB: -10 * log10(1 - MS-SSIM) (the customary axis of learned-compression
           plots; it spreads the values near 1 and makes the curve close to linear in log-rate).
  lpips    "lpips" negated (lower is better, so -LPIPS grows with quality).
  dists    "dists" negated, likewise.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SicodecError
from .results import LOWER_IS_BETTER, METRIC_NAMES

__all__ = ["bd_rate", "bd_rate_curves", "quality_axis", "pchip_slopes", "pchip_integral"]


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson slopes of the monotone cubic Hermite interpolant through (x, y), x strictly increasing.

    Interior: 0 where the neighbouring secant slopes differ in sign (or one is 0), else their weighted harmonic
    mean (weights from the interval lengths). Ends: a one-sided three-point estimate, set to 0 if its sign
    disagrees with the end secant, and limited to 3x the secant when the data turn there. Two points: a line.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    h = np.diff(x)
    s = np.diff(y) / h
    n = len(x)
    if n == 2:
        return np.array([s[0], s[0]])
    d = np.zeros(n)
    for k in range(1, n - 1):
        if s[k - 1] * s[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / s[k - 1] + w2 / s[k])
    d[0] = _end_slope(h[0], h[1], s[0], s[1])
    d[-1] = _end_slope(h[-1], h[-2], s[-1], s[-2])
    return d


def _end_slope(h0: float, h1: float, s0: float, s1: float) -> float:
    d = ((2 * h0 + h1) * s0 - h0 * s1) / (h0 + h1)
    if np.sign(d) != np.sign(s0):
        return 0.0
    if np.sign(s0) != np.sign(s1) and abs(d) > abs(3 * s0):
        return 3 * s0
    return float(d)


def _piece_integral(y0, y1, d0, d1, h, t):
    """Integral over [0, t*h] of the cubic Hermite piece with values y0, y1 and slopes d0, d1 on an interval h."""
    t2, t3, t4 = t * t, t**3, t**4
    return h * (y0 * (t4 / 2 - t3 + t) + y1 * (t3 - t4 / 2) + h * d0 * (t4 / 4 - 2 * t3 / 3 + t2 / 2)
                + h * d1 * (t4 / 4 - t3 / 3))


def pchip_integral(x: np.ndarray, y: np.ndarray, a: float, b: float, d: np.ndarray | None = None) -> float:
    """Exact integral from a to b (x[0] <= a <= b <= x[-1]) of the PCHIP interpolant through (x, y)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d = pchip_slopes(x, y) if d is None else d

    def antiderivative(v: float) -> float:  # integral from x[0] to v
        k = int(np.clip(np.searchsorted(x, v, side="right") - 1, 0, len(x) - 2))
        h = x[1:] - x[:-1]
        full = sum(_piece_integral(y[i], y[i + 1], d[i], d[i + 1], h[i], 1.0) for i in range(k))
        return full + _piece_integral(y[k], y[k + 1], d[k], d[k + 1], h[k], (v - x[k]) / h[k])

    return antiderivative(b) - antiderivative(a)


def quality_axis(metric: str, values) -> np.ndarray:
    """The values of `metric` ("psnr", "ms-ssim", "lpips", "dists" or their results keys) on the BD-rate quality axis."""
    key = _metric_key(metric)
    v = np.asarray(values, dtype=np.float64)
    if key == "ms-ssim-rgb":
        if np.any(v >= 1) or np.any(v < 0):
            raise SicodecError("MS-SSIM values must lie in [0, 1) for the dB axis -10*log10(1 - MS-SSIM)")
        return -10 * np.log10(1 - v)
    return -v if key in LOWER_IS_BETTER else v


def _metric_key(metric: str) -> str:
    if metric in METRIC_NAMES:
        return METRIC_NAMES[metric]
    if metric in METRIC_NAMES.values():
        return metric
    raise SicodecError(f"unknown metric {metric!r} for BD-rate; use one of {', '.join(METRIC_NAMES)}")


def _curve(rate, quality, which: str) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=np.float64).ravel(), np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise SicodecError(f"{which} curve: {r.size} rates but {q.size} quality values")
    if r.size < 2:
        raise SicodecError(f"{which} curve has {r.size} point(s); BD-rate needs at least 2 per curve")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise SicodecError(f"{which} curve has non-finite rate or quality values")
    if np.any(r <= 0):
        raise SicodecError(f"{which} curve has a rate <= 0; BD-rate works on log-rate")
    order = np.argsort(q, kind="stable")
    r, q = r[order], q[order]
    if np.any(np.diff(q) == 0):
        dup = q[:-1][np.diff(q) == 0][0]
        raise SicodecError(f"{which} curve has two points with the same quality ({dup:g}); "
                           "log-rate cannot be a function of quality")
    return np.log(r), q


def bd_rate_curves(rate_anchor, quality_anchor, rate_test, quality_test) -> float:
    """BD-rate in percent of the test curve against the anchor; qualities must grow with quality (see quality_axis).

    Raises SicodecError when a curve has fewer than 2 points, bad values, or the curves share no quality range.
    """
    la, qa = _curve(rate_anchor, quality_anchor, "anchor")
    lt, qt = _curve(rate_test, quality_test, "test")
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not lo < hi:
        raise SicodecError(f"the curves do not overlap in quality: anchor covers [{qa[0]:.4g}, {qa[-1]:.4g}], "
                           f"test covers [{qt[0]:.4g}, {qt[-1]:.4g}]; BD-rate needs a shared quality range")
    mean_diff = (pchip_integral(qt, lt, lo, hi) - pchip_integral(qa, la, lo, hi)) / (hi - lo)
    return float((math.exp(mean_diff) - 1) * 100)


def bd_rate(anchor: dict, test: dict, metric: str = "psnr") -> float:
    """BD-rate in percent of results dict `test` against results dict `anchor` on `metric`.

    `anchor`/`test` are full results dicts (with "results") or their "results" part. `metric` is one of
    psnr, ms-ssim, lpips, dists (or psnr-rgb, ms-ssim-rgb). Negative: `test` saves rate.
    """
    key = _metric_key(metric)
    curves = []
    for which, data in (("anchor", anchor), ("test", test)):
        res = data.get("results", data) if isinstance(data, dict) else None
        if not isinstance(res, dict) or "bpp" not in res or key not in res:
            name = data.get("name", which) if isinstance(data, dict) else which
            raise SicodecError(f"{which} results ({name}) have no 'bpp' and {key!r} to compute BD-rate on {metric}")
        curves.append((res["bpp"], quality_axis(key, res[key])))
    (ra, qa), (rt, qt) = curves
    try:
        return bd_rate_curves(ra, qa, rt, qt)
    except SicodecError as e:
        names = [d.get("name", w) if isinstance(d, dict) else w for w, d in (("test", test), ("anchor", anchor))]
        raise SicodecError(f"BD-rate of {names[0]} against {names[1]} on {metric}: {e}") from None
