"""Synonymous Image Compression (Liang et al., ICML 2025): a progressive codec with synonym sampling.

The latent y is split into L channel slices. A file holds z, then slice 1, ..., slice L, one section
each; level l is z plus slices 1..l, and any such prefix is a valid file. The Gaussian of slice k is
conditioned on the hyper output and on the decoded slices before it (channel-conditional, decoded
slice by slice in parallel over space). Slices a file does not carry are filled by the decoder:
`uniform` round(mu_h + U(-2, 2)) (the paper's sampler) or `gaussian` round(mu_h + sigma_h * N(0, 1))
around the hyper mean mu_h and scale sigma_h, with a seeded generator so that a file and a seed
always give the same pixels; `mean`, deterministic: each missing slice is the mean its slice
network predicts from the slices before it (decoded or filled), which is closer to the true latent
than mu_h and gives the lowest distortion; or `ancestral` (the default), a sample drawn slice by
slice from those predicted Gaussians at half their scale, round(mean + scale / 2 * N(0, 1)), with the
same seeded generator.
"""

from __future__ import annotations

import bisect

import torch
from torch import nn

from ..entropy.exact import Derived, ExactSequential, to_fixed, from_fixed
from ..entropy.factorized import FactorizedDensity
from ..entropy.gaussian import GaussianConditional, coding_params, gaussian_tables
from ..entropy.ops import lower_bound, round_straight_through
from ..errors import SicodecError
from .base import LatentCodecModel
from .layers import GDN, conv, deconv

FILL_MODES = ("ancestral", "uniform", "gaussian", "mean")
DEFAULT_FILL_MODE = "ancestral"  # measured on Kodak: better than `uniform` in every metric at every level
ANCESTRAL_TEMPERATURE = 0.5  # measured: higher t lowers LPIPS, costs PSNR and DISTS; 1/2 is between (docs/sic.md)


def conv_transforms(N: int, M: int) -> tuple[nn.Module, nn.Module]:
    """GDN convolutional analysis/synthesis (stride 16), as in the hyperprior."""
    g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
    g_s = nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                        deconv(N, N), GDN(N, inverse=True), deconv(N, 3))
    return g_a, g_s


def slice_widths(M: int, slices: int | list[int]) -> list[int]:
    """Channels per slice: `slices` equal slices of M, or the widths themselves (narrow first slices give
    cheap low levels, as in ELIC's uneven channel groups)."""
    if isinstance(slices, bool) or not isinstance(slices, (int, list)):
        raise SicodecError(f"slices must be a count or a list of widths, not {slices!r}")
    if isinstance(slices, int):
        if slices < 1 or M % slices:
            raise SicodecError(f"M={M} latent channels do not split into {slices} equal slices")
        return [M // slices] * slices
    if not slices or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in slices) or sum(slices) != M:
        raise SicodecError(f"slice widths {slices} must be positive whole numbers that add up to M={M}")
    return list(slices)


class SynonymousCodec(LatentCodecModel):
    """SIC model. `transform` is 'conv' (GDN, N filters) or 'swin' (the paper's Swin transforms)."""

    arch = "sic"
    progressive = True
    stride = 64

    def __init__(self, M: int = 256, slices: int | list[int] = 16, N: int = 128, hyper: int = 128,
                 transform: str = "conv", swin: dict | None = None, param_hidden: int = 128):
        super().__init__()
        self.widths = slice_widths(M, slices)
        self.slices = len(self.widths)
        self.offsets = [sum(self.widths[:k]) for k in range(self.slices + 1)]  # offsets[l]: channels of levels 1..l
        equal = len(set(self.widths)) == 1
        self.config = {"M": M, "slices": self.slices if equal else self.widths, "N": N, "hyper": hyper,
                       "transform": transform, "swin": swin, "param_hidden": param_hidden}
        if transform == "conv":
            self.g_a, self.g_s = conv_transforms(N, M)
        elif transform == "swin":
            from .swin import swin_transforms

            self.g_a, self.g_s = swin_transforms(M, **(swin or {}))
        else:
            raise SicodecError(f"unknown transform {transform!r} (conv or swin)")
        self.h_a = nn.Sequential(conv(M, hyper, 3, 1), nn.LeakyReLU(0.01), conv(hyper, hyper), nn.LeakyReLU(0.01), conv(hyper, hyper))
        self.h_s = nn.Sequential(deconv(hyper, hyper), nn.ReLU(), deconv(hyper, hyper), nn.ReLU(), conv(hyper, 2 * M, 3, 1))
        self.slice_params = nn.ModuleList(
            nn.Sequential(conv(2 * S + self.offsets[k], param_hidden, 3, 1), nn.LeakyReLU(0.01),
                          conv(param_hidden, param_hidden // 2, 3, 1), nn.LeakyReLU(0.01),
                          conv(param_hidden // 2, 2 * S, 3, 1))
            for k, S in enumerate(self.widths))
        self.entropy_z = FactorizedDensity(hyper)
        self.gaussian = GaussianConditional()
        self._exact = Derived(lambda: (ExactSequential(self.h_s), [ExactSequential(p) for p in self.slice_params]))

    @property
    def min_sections(self) -> int:
        return 2

    @property
    def max_sections(self) -> int:
        return 1 + self.slices

    # --- shared arithmetic of the float (training) and exact (coding) paths --------------------
    def _split_hyper(self, hyper: torch.Tensor):
        """h_s output -> (mu_h, sigma_h) of every latent channel (sigma_h >= 0; in training, gradients
        that push a clamped sigma back up still flow)."""
        mu, sigma = hyper.chunk(2, dim=1)
        return mu, lower_bound(sigma, 0.0)

    def side_latent(self, y: torch.Tensor) -> torch.Tensor:
        """z = h_a(y), unrounded (float32)."""
        return self.h_a(y).float()

    def hyper_params(self, z_hat: torch.Tensor):
        """(mu_h, sigma_h) of every latent channel from z_hat, in float (training, rate estimates, tests;
        coding uses `_exact_hyper`)."""
        return self._split_hyper(self.h_s(z_hat).float())

    def _channels(self, k: int) -> slice:
        return slice(self.offsets[k], self.offsets[k + 1])

    def _slice_input(self, k: int, mu_h, sigma_h, previous: list[torch.Tensor]) -> torch.Tensor:
        own = self._channels(k)
        return torch.cat([mu_h[:, own], sigma_h[:, own], *previous[:k]], dim=1)

    def _slice_gaussian(self, k: int, out: torch.Tensor, mu_h, sigma_h):
        """Slice k's mean and scale: the hyper values plus the slice network's residual."""
        own = self._channels(k)
        d_mu, d_sigma = out.chunk(2, dim=1)
        return mu_h[:, own] + d_mu, lower_bound(sigma_h[:, own] + d_sigma, 0.0)

    def slice_gaussian(self, k: int, mu_h, sigma_h, previous: list[torch.Tensor]):
        """Slice k's mean and scale in float, from the slices before it (training, rate estimates; coding
        uses `_exact_gaussian`)."""
        out = self.slice_params[k](self._slice_input(k, mu_h, sigma_h, previous)).float()
        return self._slice_gaussian(k, out, mu_h, sigma_h)

    @torch.no_grad()
    def split_slices(self, widths: list[int]) -> SynonymousCodec:
        """A copy whose slices have the given widths, each inside one of this model's slices (more levels),
        its slice networks started from this model's: a warm start for training a finer ladder of levels.

        New slice j inside old slice k keeps old network k's weights for its own channels' hyper inputs,
        for the slices before k and for its own outputs; the inputs it gains (the channels of slice k before
        it) start at zero. It loses old network k's inputs from the hyper values of the rest of slice k, so
        its predictions match the old ones exactly only where those weights are zero.
        """
        new = type(self)(**{**self.config, "slices": list(widths)})
        if not set(self.offsets) <= set(new.offsets):
            raise SicodecError(f"slice widths {list(widths)} do not split the model's slices {self.widths}")
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("slice_params.")}
        new.load_state_dict(own, strict=False)
        for j, net in enumerate(new.slice_params):
            k = bisect.bisect_right(self.offsets, new.offsets[j]) - 1  # the old slice it lies in
            old, S, base = self.slice_params[k], self.widths[k], self.offsets[k]
            mine = torch.arange(new.offsets[j], new.offsets[j + 1]) - base
            s = len(mine)
            for i in range(1, len(old) - 1):  # the hidden layers are copied as they are
                net[i].load_state_dict(old[i].state_dict())
            w = torch.zeros_like(net[0].weight)
            w[:, :s] = old[0].weight[:, mine]  # mu_h of these channels
            w[:, s:2 * s] = old[0].weight[:, S + mine]  # sigma_h of these channels
            w[:, 2 * s:2 * s + base] = old[0].weight[:, 2 * S:]  # whole slices before k
            net[0].weight.copy_(w)
            net[0].bias.copy_(old[0].bias)
            rows = torch.cat([mine, S + mine])  # these channels' mean and scale residuals
            net[-1].weight.copy_(old[-1].weight[rows])
            net[-1].bias.copy_(old[-1].bias[rows])
        new.name, new.status, new.trained_steps = self.name, self.status, self.trained_steps
        return new.train(self.training)

    # --- training ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict:
        """All slices transmitted: y, its rounded version, per-slice likelihoods, mu_h and sigma_h."""
        y = self.g_a(x).float()
        z_hat, z_lik = self.entropy_z(self.side_latent(y))
        mu_h, sigma_h = self.hyper_params(z_hat)
        y_round = round_straight_through(y)
        slices = list(y_round.split(self.widths, dim=1))
        liks = []
        for k in range(self.slices):
            mean, scale = self.slice_gaussian(k, mu_h, sigma_h, slices)
            liks.append(self.gaussian(y[:, self._channels(k)], scale, mean)[1])
        return {"y": y, "y_hat": y_round, "mu_h": mu_h, "sigma_h": sigma_h,
                "likelihoods": {"z": z_lik, **{f"y{k + 1}": lik for k, lik in enumerate(liks)}},
                "x_hat": self.g_s(y_round)}

    def fill(self, mu_h: torch.Tensor, sigma_h: torch.Tensor, mode: str, generator: torch.Generator | None = None):
        """Synonym samples for untransmitted latents: `uniform` or `gaussian` around mu_h."""
        if mode == "uniform":
            noise = torch.rand(mu_h.shape, generator=generator, dtype=torch.float64).to(mu_h) * 4 - 2
            return torch.round(mu_h + noise)
        if mode == "gaussian":
            noise = torch.randn(mu_h.shape, generator=generator, dtype=torch.float64).to(mu_h)
            return torch.round(mu_h + sigma_h * noise)
        raise SicodecError(f"unknown sampling mode {mode!r} (uniform or gaussian)")

    def ancestral_fill(self, y_hat, mu_h, sigma_h, level: int, generator=None,
                       temperature: float | None = ANCESTRAL_TEMPERATURE) -> torch.Tensor:
        """The float version of the `ancestral` fill (training, scripts/compare_fills.py): slices
        level+1..L drawn one by one from the Gaussians the slice networks predict from the slices
        before them, at `temperature`; None gives the predicted means themselves (`mean`'s float version)."""
        slices = list(y_hat[:, :self.offsets[level]].split(self.widths[:level], dim=1))
        for k in range(level, self.slices):
            mean, scale = self.slice_gaussian(k, mu_h, sigma_h, slices)
            if temperature is not None:
                noise = torch.randn(mean.shape, generator=generator, dtype=torch.float64).to(mean)
                mean = torch.round(mean + temperature * scale * noise)
            slices.append(mean.detach())
        return torch.cat(slices[level:], dim=1) if level < self.slices else y_hat[:, :0]

    def synthesize_level(self, y_hat, mu_h, sigma_h, level: int, mode: str = "uniform", generator=None,
                         synthesis=None):
        """Reconstruction from slices 1..level of y_hat, the rest sampled (`uniform`, `gaussian` or, in
        training, `ancestral`)."""
        c = self.offsets[level]
        if mode == "ancestral":
            rest = self.ancestral_fill(y_hat, mu_h, sigma_h, level, generator)
        else:
            rest = self.fill(mu_h[:, c:], sigma_h[:, c:], mode, generator).detach()
        y_mix = torch.cat([y_hat[:, :c], rest], dim=1)
        return (synthesis or self.g_s)(y_mix), y_mix

    # --- coding -------------------------------------------------------------------------------------
    def coding_tables(self) -> list:
        return list(self.entropy_z.tables()) + list(gaussian_tables())

    def _exact_hyper(self, z_int):
        h_s, _ = self._exact.get(self)
        return self._split_hyper(h_s(to_fixed(z_int)))

    def _exact_gaussian(self, k, mu_h, sigma_h, previous):
        """Slice k's mean and scale in fixed point, from the slices before it (values, not fixed point)."""
        _, nets = self._exact.get(self)
        inp = self._slice_input(k, mu_h, sigma_h, [to_fixed(p) for p in previous])
        return self._slice_gaussian(k, nets[k](inp), mu_h, sigma_h)

    def _predict_slice(self, k, mu_h, sigma_h, previous, generator=None):
        """A missing slice from its predicted Gaussian: the mean, or with a generator an ancestral sample.

        Exact fixed point, then float64 elementwise operations on exact values with draws from a seeded
        CPU generator: the same on any machine, thread count or device."""
        mean, scale = (from_fixed(v) for v in self._exact_gaussian(k, mu_h, sigma_h, previous))
        if generator is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float64)
        return torch.round(mean + ANCESTRAL_TEMPERATURE * scale * noise)

    def _exact_slice(self, k, mu_h, sigma_h, previous_int):
        mean, scale = self._exact_gaussian(k, mu_h, sigma_h, previous_int)
        return coding_params(scale, mean)

    @torch.no_grad()
    def compress_latents(self, x: torch.Tensor, **options) -> list[bytes]:
        y = self.analysis(x)
        z_int = self.round_latent(self.side_latent(y))
        y_int = self.round_latent(y)
        sections = [self.entropy_z.compress(z_int)]
        mu_h, sigma_h = self._exact_hyper(z_int)
        previous = list(y_int.split(self.widths, dim=1))
        for k in range(self.slices):
            sections.append(self.gaussian.compress(previous[k], *self._exact_slice(k, mu_h, sigma_h, previous)))
        return sections

    @torch.no_grad()
    def decompress_latents(self, sections: list[bytes], shape: tuple[int, int], level: int | None = None,
                           mode: str = DEFAULT_FILL_MODE, seed: int = 0, **options) -> torch.Tensor:
        available = len(sections) - 1
        level = available if level is None else level
        if not 1 <= level <= self.slices:
            raise SicodecError(f"level must be between 1 and {self.slices}")
        if mode not in FILL_MODES:
            raise SicodecError(f"unknown fill mode {mode!r} (choose from {', '.join(FILL_MODES)})")
        if level > available:
            raise SicodecError(f"level {level} asked for, but the file holds levels 1..{available} only")
        h, w = shape[0] // self.stride, shape[1] // self.stride
        z_int = self.entropy_z.decompress(sections[0], (1, self.entropy_z.channels, h, w))
        mu_h, sigma_h = self._exact_hyper(z_int)
        decoded = []
        for k in range(level):
            idx, offset = self._exact_slice(k, mu_h, sigma_h, decoded)
            decoded.append(self.gaussian.decompress(sections[k + 1], (1, self.widths[k], 4 * h, 4 * w), idx, offset))
        generator = torch.Generator().manual_seed(int(seed))
        if mode in ("mean", "ancestral"):
            sampler = generator if mode == "ancestral" else None
            for k in range(level, self.slices):
                decoded.append(self._predict_slice(k, mu_h, sigma_h, decoded, sampler))
            return self.synthesis(torch.cat(decoded, dim=1).to(torch.float32))
        y_hat = torch.cat(decoded + [torch.zeros(1, self.offsets[-1] - self.offsets[level], 4 * h, 4 * w)], dim=1)
        x_hat, _ = self.synthesize_level(y_hat, from_fixed(mu_h).float(), from_fixed(sigma_h).float(), level, mode,
                                         generator, synthesis=self.synthesis)
        return x_hat
