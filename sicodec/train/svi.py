"""The synonymous variational inference (SVI) objective of SIC (Liang et al., ICML 2025).

Per step one level l is trained beside the full transmission:

    L = a * L_level(l) + (1 - a) * L_full + D_syn + D_sam
    L_level(l) = lambda_r(l) * bpp(z, slices 1..l) + lambda_d(l) * mean_j MSE(x, x_hat_j)
                 + lambda_p(l) * mean_j LPIPS(x, x_hat_j)

over M reconstructions x_hat_j whose untransmitted slices are sampled as round(mu_h + U(-2, 2)) (the
paper's; `fill` may instead be "gaussian" or "ancestral", the decoder's default fill).
D_syn and D_sam re-encode each reconstruction with g_a and compare it with the transmitted and with
the sampled latents. A warm-up term spreads the rate evenly over the slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..entropy.ops import bits
from ..errors import SicodecError
from .loss import mse_from_psnr


TRAINING_FILLS = ("uniform", "gaussian", "ancestral")  # "uniform" is the paper's


@dataclass(frozen=True)
class LevelWeights:
    rate: float
    distortion: float
    perception: float


def paper_weights(level: int, levels: int) -> LevelWeights:
    """The paper's weights for 16 levels, generalised to any number by the fraction t = 16 l / L:
    lambda_d = 128 t, lambda_p = 2^(5 - t/8), lambda_r = 2^(6 - 3t/8); the full level gets 2048, 8, 1."""
    t = 16 * level / levels
    return LevelWeights(rate=2 ** (6 - 3 * t / 8), distortion=128 * t, perception=2 ** (5 - t / 8))


class SVILoss:
    """Callable (model, x, step) -> dict of loss terms; "loss" is what to minimise.

    `lpips` is a differentiable perceptual distance (e.g. `sicodec.metrics.lpips.LPIPS`); None drops
    the perceptual terms. `schedule` is "rolling" (levels L, L-1, ..., 1, repeating) or "random".
    """

    def __init__(self, levels: int, lpips=None, samples: int = 1, alpha: float = 0.5, weights=paper_weights,
                 schedule: str = "rolling", warmup_steps: int = 0, rate_tilt: float = 1.0, fill: str = "uniform",
                 generator: torch.Generator | None = None):
        if schedule not in ("rolling", "random"):
            raise ValueError(f"unknown level schedule {schedule!r}")
        if fill not in TRAINING_FILLS:
            raise SicodecError(f"unknown training fill {fill!r} (choose from {', '.join(TRAINING_FILLS)})")
        if not rate_tilt > 0:
            raise SicodecError(f"the rate tilt must be a positive number, not {rate_tilt!r}")
        self.levels, self.lpips, self.samples, self.alpha = levels, lpips, samples, alpha
        self.weights, self.schedule, self.warmup_steps, self.generator = weights, schedule, warmup_steps, generator
        self.rate_tilt, self.fill = rate_tilt, fill

    def level_weights(self, level: int) -> LevelWeights:
        """`weights` with the rate weight multiplied by rate_tilt at level 1, falling geometrically to 1 at
        the top level: a tilt above 1 pushes the low levels towards lower rates and leaves the full level as is."""
        w = self.weights(level, self.levels)
        if self.rate_tilt == 1.0 or self.levels == 1:
            return w
        factor = self.rate_tilt ** ((self.levels - level) / (self.levels - 1))
        return LevelWeights(rate=w.rate * factor, distortion=w.distortion, perception=w.perception)

    def level_for(self, step: int) -> int:
        if self.schedule == "rolling":
            return self.levels - step % self.levels
        return int(torch.randint(1, self.levels + 1, (1,), generator=self.generator))

    def _term(self, w: LevelWeights, bpp, x, recons) -> torch.Tensor:
        mse = torch.stack([F.mse_loss(r.float(), x) for r in recons]).mean()
        term = w.rate * bpp + w.distortion * mse
        if self.lpips is not None and w.perception:
            term = term + w.perception * torch.stack([self.lpips(r.float(), x).mean() for r in recons]).mean()
        return term

    def validation_score(self, rows: list[dict]) -> float:
        """The per-level objective on real files, averaged over levels and images: rows hold "point"
        (the level), the real "bpp", "psnr-rgb" and, when measured, "lpips"."""
        total = 0.0
        for r in rows:
            w = self.level_weights(r["point"])
            total += w.rate * r["bpp"] + w.distortion * mse_from_psnr(r["psnr-rgb"])
            if self.lpips is not None and "lpips" in r:
                total += w.perception * r["lpips"]
        return total / len(rows)

    def __call__(self, model, x: torch.Tensor, step: int = 0) -> dict:
        n, _, h, w = x.shape
        pixels = n * h * w
        out = model(x)
        lik = out["likelihoods"]
        slice_bits = torch.stack([bits({"s": lik[f"y{k + 1}"]}) for k in range(self.levels)]) / pixels
        z_bpp = bits({"z": lik["z"]}) / pixels
        level = self.level_for(step)
        c = model.offsets[level]

        full = self._term(self.level_weights(self.levels), z_bpp + slice_bits.sum(), x, [out["x_hat"]])
        recons, mixes = [], []
        for _ in range(self.samples):
            x_hat, y_mix = model.synthesize_level(out["y_hat"], out["mu_h"], out["sigma_h"], level, self.fill, self.generator)
            recons.append(x_hat)
            mixes.append(y_mix)
        level_bpp = z_bpp + slice_bits[:level].sum()
        at_level = self._term(self.level_weights(level), level_bpp, x, recons)

        target = out["y_hat"][:, :c].detach()
        re_full = model.g_a(out["x_hat"]).float()
        re_samples = [model.g_a(r).float() for r in recons]
        d_syn = torch.stack([F.mse_loss(r[:, :c], target) for r in [re_full, *re_samples]]).mean()
        d_sam = (torch.stack([F.mse_loss(r[:, c:], m[:, c:].detach()) for r, m in zip(re_samples, mixes)]).mean()
                 if c < out["y_hat"].shape[1] else x.new_zeros(()))

        loss = self.alpha * at_level + (1 - self.alpha) * full + d_syn + d_sam
        result = {"level": level, "L_level": at_level, "L_full": full, "D_syn": d_syn, "D_sam": d_sam,
                  "bpp": level_bpp, "bpp_full": z_bpp + slice_bits.sum(),
                  "mse": F.mse_loss(recons[0].float(), x)}
        if step < self.warmup_steps:  # spread the rate evenly over the slices
            balance = slice_bits.std() - slice_bits.min()
            loss = loss + balance
            result["warmup"] = balance
        result["loss"] = loss
        return result
