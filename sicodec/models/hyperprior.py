"""The scale-hyperprior codec of Ballé et al. (ICLR 2018).

x -> g_a -> y -> round -> g_s -> x_hat, with side information z = h_a(|y|) coded under a factorized
density and the scales of y's Gaussians given by h_s(z_hat). The file has two sections: z, then y.
"""

from __future__ import annotations

import torch
from torch import nn

from ..entropy.exact import Derived, ExactSequential, to_fixed
from ..entropy.factorized import FactorizedDensity
from ..entropy.gaussian import GaussianConditional, coding_params, gaussian_tables
from ..entropy.ops import likelihood_bound, round_straight_through
from ..errors import SicodecError
from .base import LatentCodecModel
from .layers import GDN, conv, deconv
from .refine import refine_latent

QUANTIZATIONS = ("noise", "mixed")  # the training proxies for rounding (ScaleHyperprior.forward)


def check_quantization(quantization: str) -> None:
    """Raise a clear error unless `quantization` is one of QUANTIZATIONS."""
    if quantization not in QUANTIZATIONS:
        raise SicodecError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")


class ScaleHyperprior(LatentCodecModel):
    """N filters in the transforms, M latent channels (N, M = 128, 192 or 192, 320 in the paper)."""

    arch = "hyperprior"
    stride = 64  # total downsampling of z: images are padded to a multiple of it
    min_sections = max_sections = 2
    refinable = True

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.config = {"N": N, "M": M}
        self.g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(), deconv(N, N), nn.ReLU(), conv(N, M, 3, 1), nn.ReLU())
        self.entropy_z = FactorizedDensity(N)
        self.gaussian = GaussianConditional()
        self._exact_h_s = Derived(lambda: ExactSequential(self.h_s))

    def forward(self, x: torch.Tensor, quantization: str = "noise") -> dict:
        """Training pass: reconstruction and the likelihoods of y and z.

        "noise": y and z plus uniform noise everywhere (Ballé et al.). "mixed" (Minnen and Singh, ICIP
        2020): the rates still see noise, but h_s and g_s read round(z) and round(y), as a decoder does,
        with straight-through gradients. Outside training both round."""
        check_quantization(quantization)
        # Entropy models run in float32 even under bf16 autocast.
        y = self.g_a(x).float()
        z = self.side_latent(y)
        z_hat, z_lik = self.entropy_z(z)
        mixed = quantization == "mixed" and self.training
        y_hat, y_lik = self.gaussian(y, self.hyper_params(round_straight_through(z) if mixed else z_hat))
        if mixed:
            y_hat = round_straight_through(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    def side_latent(self, y: torch.Tensor) -> torch.Tensor:
        """z = h_a(|y|), unrounded (float32)."""
        return self.h_a(y.abs()).float()

    def hyper_params(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The scales of y's Gaussians from z_hat, in float (training, rate estimates; coding uses `_scales`)."""
        return self.h_s(z_hat).float()

    def coding_tables(self) -> list:
        return list(self.entropy_z.tables()) + list(gaussian_tables())

    def _scales(self, z_int: torch.Tensor) -> torch.Tensor:
        return self._exact_h_s.get(self.h_s)(to_fixed(z_int))

    @torch.no_grad()
    def compress_latents(self, x: torch.Tensor, refine: int = 0, valid: tuple[int, int] | None = None) -> list[bytes]:
        """Padded image -> [z, y] sections; `refine` > 0 searches `refine` steps per tile for better
        integers y (see `refine_latent`; `valid` is the unpadded height and width)."""
        y = self.analysis(x)
        z_int = self.round_latent(self.side_latent(y))
        if refine:
            scales = self.hyper_params(z_int)
            with torch.enable_grad():
                y = refine_latent(self, x, y, scales, refine, self.lmbda, valid)
        y_int = self.round_latent(y)
        return [self.entropy_z.compress(z_int), self.gaussian.compress(y_int, *coding_params(self._scales(z_int)))]

    def read_latents(self, sections: list[bytes], shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The integer z and y a file carries, for a padded image of `shape`."""
        h, w = shape[0] // self.stride, shape[1] // self.stride
        z_int = self.entropy_z.decompress(sections[0], (1, self.config["N"], h, w))
        scales = self._scales(z_int)
        return z_int, self.gaussian.decompress(sections[1], scales.shape, *coding_params(scales)).to(torch.float32)

    @torch.no_grad()
    def latent_likelihoods(self, z_int: torch.Tensor, y_int: torch.Tensor) -> dict:
        """The float model's likelihoods of integer latents (the rate it estimates for them)."""
        return {"y": likelihood_bound(self.gaussian.likelihood(y_int, self.hyper_params(z_int))),
                "z": likelihood_bound(self.entropy_z.likelihood(z_int))}

    @torch.no_grad()
    def decompress_latents(self, sections: list[bytes], shape: tuple[int, int], **options) -> torch.Tensor:
        return self.synthesis(self.read_latents(sections, shape)[1])
