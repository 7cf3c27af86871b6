"""What every sicodec model provides to the codec: latents <-> sections, identity, coding tables."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager

import torch
from torch import nn

from ..entropy.coding import MAX_SYMBOL_MAGNITUDE, tables_checksum
from ..entropy.exact import Derived
from ..errors import ModelError, SicodecError
from .tiling import run_tiled


@contextmanager
def reproducible_synthesis():
    """Run convolutions on PyTorch's native GEMM kernels instead of oneDNN, and cuDNN deterministically.

    oneDNN's convolutions give slightly different float results for different thread counts,
    which can flip a decoded pixel; the native kernels give the same bits whatever the thread count
    (measured ~1.7x slower). cuDNN's autotuner may pick a different algorithm per run. Decoders use
    this so that a file always decodes to the same pixels on a given device.
    """
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
            yield
    finally:
        torch.backends.mkldnn.enabled = before


def transform_device(device: str | torch.device | None) -> torch.device:
    """A torch device for the transforms, refusing one this machine does not have with a clear error."""
    try:
        device = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as e:
        raise ModelError(f"unknown device {device!r} (cpu, cuda, cuda:N)") from e
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ModelError(f"device {device} is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ModelError(f"device {device} is not supported (cpu, cuda, cuda:N)")
    return device


@contextmanager
def float32_defaults():
    """Coding creates its float tensors as float32 whatever default dtype the caller has set."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


class LatentCodecModel(nn.Module):
    """Base of the registered models.

    Subclasses set `arch`, `stride` (images are padded to a multiple of it), `min_sections` and
    `max_sections`, keep their constructor arguments in `self.config`, and implement `forward`
    (training), `compress_latents` (padded image -> sections) and `decompress_latents`
    (sections -> padded reconstruction) and `coding_tables`.
    """

    arch: str = ""
    progressive: bool = False  # one section per level; decoders fill what a file does not carry
    refinable: bool = False  # compress_latents takes refine= (steps of encoder-side latent search) and valid=
    lmbda: float | None = None  # the rate-distortion trade-off it was trained for (registered models)
    stride: int = 1
    min_sections: int = 1
    max_sections: int = 1
    compiled_parts: tuple[str, ...] = ("g_a", "g_s")  # what torch.compile speeds up in training (measured)
    # Networks that only shape the coding distributions (never the pixels of a full file): shipped
    # weights store their conv weights in int8. Measured: no cost for these (SIC's slice networks in int8
    # cost 0.2 % of rate, so they stay float16); docs/training.md.
    int8_parts: tuple[str, ...] = ("h_a", "h_s")
    latent_stride: int = 16  # image pixels per latent pixel (g_a's downsampling)
    # The coder runs g_a and g_s in tiles of `tile` latent pixels with `halo` pixels of context (part of
    # the format: a decoder must tile the same way to give the same pixels). Images up to 1024 pixels on
    # a side are one tile.
    tile: int = 64
    halo: int = 4  # g_a and g_s of the conv models reach 2 latent pixels (measured: 2 is exact to float rounding)
    config: dict

    def __init__(self):
        super().__init__()
        self.name = self.arch  # the registry name once loaded; stored in files
        self.status, self.trained_steps = "untrained", 0  # set from the weights' metadata when loaded
        self._fingerprint = Derived(self._compute_fingerprint)
        self._tables_crc = Derived(lambda: tables_checksum(self.coding_tables()))

    def fingerprint(self) -> bytes:
        """16 bytes identifying the architecture, configuration and exact weights."""
        return self._fingerprint.get(self)

    def tables_checksum(self) -> int:
        """CRC32 of the derived integer coding tables (refreshed whenever the weights change)."""
        return self._tables_crc.get(self)

    def _compute_fingerprint(self) -> bytes:
        h = hashlib.sha256(json.dumps({"arch": self.arch, "config": self.config}, sort_keys=True).encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().to(torch.float32).cpu().contiguous().numpy().astype("<f4").tobytes())
        return h.digest()[:16]

    def place_transforms(self, device: str | torch.device | None) -> LatentCodecModel:
        """Run g_a and g_s, the heavy float transforms, on `device`. Everything that decides the file's
        content from integer latents (hyper and slice networks in fixed point, tables, sampling) stays
        on the CPU, so a file made on one device decodes to the same latents on any other."""
        device = transform_device(device)
        self.g_a.to(device)
        self.g_s.to(device)
        return self

    def _transforms_device(self) -> torch.device:
        return next(self.g_s.parameters()).device

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a for coding, in tiles (bounded memory for huge images); the latent comes back on the CPU."""
        x = x.to(self._transforms_device())
        return run_tiled(self.g_a, x, self.latent_stride, 1, self.tile, self.halo).cpu()

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        """g_s for decoding, in tiles, on the reproducible kernels; the image comes back on the CPU."""
        with reproducible_synthesis():
            y = y.to(self._transforms_device())
            return run_tiled(self.g_s, y, 1, self.latent_stride, self.tile, self.halo).cpu()

    @staticmethod
    def round_latent(v: torch.Tensor) -> torch.Tensor:
        """Round a latent to integers; refuse (never clip) values that no table could code."""
        if not torch.isfinite(v).all():
            raise SicodecError("the model produced non-finite latents for this image")
        if v.numel() and float(v.abs().max()) >= MAX_SYMBOL_MAGNITUDE:
            raise SicodecError("the model produced latents too large to code for this image")
        return torch.round(v)
