"""Rate-distortion loss of the MSE-optimised models."""

from __future__ import annotations

import torch

from ..entropy.ops import bits
from ..models.hyperprior import check_quantization


class RateDistortionLoss:
    """lambda * 255^2 * MSE + bits per pixel (the usual ladder: lambda = 0.0018 ... 0.18). `quantization`
    is the training proxy for rounding, "noise" or "mixed" (see `ScaleHyperprior.forward`)."""

    def __init__(self, lmbda: float, quantization: str = "noise"):
        check_quantization(quantization)
        self.lmbda, self.quantization = lmbda, quantization

    def __call__(self, model, x: torch.Tensor, step: int = 0) -> dict:
        out = model(x, quantization=self.quantization)
        n, _, h, w = x.shape
        bpp = bits(out["likelihoods"]) / (n * h * w)
        mse = torch.mean((out["x_hat"].float() - x) ** 2)
        return {"loss": self.lmbda * 255.0**2 * mse + bpp, "bpp": bpp, "mse": mse}

    def validation_score(self, rows: list[dict]) -> float:
        """The same objective on real files: rows hold each image's real "bpp" and "psnr-rgb"."""
        return sum(self.lmbda * 255.0**2 * mse_from_psnr(r["psnr-rgb"]) + r["bpp"] for r in rows) / len(rows)


def mse_from_psnr(psnr: float) -> float:
    """MSE on the [0, 1] scale of an 8-bit PSNR (peak 255)."""
    return 10.0 ** (-psnr / 10.0)
