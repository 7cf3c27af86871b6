"""The one registry of models: name -> architecture, configuration and weights file (its JSON card beside it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from .base import LatentCodecModel

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# Lambda ladder of the MSE models (255^2 scale), quality 1..8.
HYPERPRIOR_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


def _architectures() -> dict[str, type[LatentCodecModel]]:
    from .hyperprior import ScaleHyperprior
    from .sic import SynonymousCodec

    return {cls.arch: cls for cls in (ScaleHyperprior, SynonymousCodec)}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. `weights` is a file name looked up in `weights_dirs()`."""

    name: str
    arch: str
    config: dict = field(default_factory=dict)
    weights: str | None = None
    description: str = ""
    quality: int | None = None
    lmbda: float | None = None  # the training trade-off (255^2 MSE scale) of the MSE models


def weights_dirs() -> list[Path]:
    """Where weights files are looked for: $SICODEC_WEIGHTS (folders, os.pathsep-separated), then the package."""
    extra = [Path(p) for p in os.environ.get("SICODEC_WEIGHTS", "").split(os.pathsep) if p]
    return extra + [WEIGHTS_DIR]


def find_weights(spec: ModelSpec) -> Path | None:
    """The installed weights file of `spec`, or None."""
    for d in weights_dirs():
        if spec.weights and (d / spec.weights).is_file():
            return d / spec.weights
    return None


def _specs() -> list[ModelSpec]:
    specs = []
    for q, lmbda in enumerate(HYPERPRIOR_LAMBDAS, start=1):
        config = {"N": 128, "M": 192} if q <= 5 else {"N": 192, "M": 320}
        specs.append(ModelSpec(
            name=f"hyperprior-q{q}", arch="hyperprior", config=config, weights=f"hyperprior-q{q}.safetensors",
            description=f"Scale hyperprior (Ballé 2018), MSE, lambda {lmbda}", quality=q, lmbda=lmbda,
        ))
    specs.append(ModelSpec(name="sic", arch="sic", config=SIC_DEFAULT_CONFIG, weights="sic.safetensors",
                           description="Synonymous Image Compression, CPU-sized default (conv transforms, 17 levels)"))
    specs.append(ModelSpec(name="sic-paper", arch="sic", config=SIC_PAPER_CONFIG, weights="sic-paper.safetensors",
                           description="Synonymous Image Compression, the paper's Swin configuration (16 levels)"))
    return specs


# The shipped SIC model's shape: 256 latent channels in 17 slices, the first two of 8 channels (a first
# level near 0.03 bpp on Kodak), the rest of 16.
SIC_DEFAULT_CONFIG = {"slices": [8, 8] + [16] * 15}

# The SIC paper's configuration (Swin transforms, 512 latent channels in 16 slices of 32).
SIC_PAPER_CONFIG = {"M": 512, "slices": 16, "hyper": 384, "transform": "swin", "param_hidden": 256,
                    "swin": {"dims": [256, 384, 512, 512], "depths": [1, 2, 2, 3], "heads": 16, "window": 8}}


REGISTRY: dict[str, ModelSpec] = {s.name: s for s in _specs()}


def build_model(arch: str, **config) -> LatentCodecModel:
    """A freshly initialised model of architecture `arch`."""
    archs = _architectures()
    if arch not in archs:
        raise ModelError(f"unknown architecture {arch!r} (known: {', '.join(sorted(archs))})")
    try:
        return archs[arch](**config)
    except TypeError as e:
        raise ModelError(f"invalid configuration for {arch}: {e}") from None


def family_members(name: str) -> list[ModelSpec]:
    """The registered models of family `name` ('hyperprior': its qualities, lowest rate first)."""
    return [s for s in REGISTRY.values() if s.arch == name or s.name.rsplit("-q", 1)[0] == name]


def resolve(name: str, quality: int | None = None) -> ModelSpec:
    """A registered model by full name ('hyperprior-q3') or by family and quality ('hyperprior', 3)."""
    if name in REGISTRY and quality is None:
        return REGISTRY[name]
    family = family_members(name)
    if not family:
        raise ModelError(f"unknown model {name!r} (see `sicodec models`)")
    if quality is None:  # the best available member, else the middle one
        available = [s for s in family if find_weights(s) is not None]
        return (available or family)[len(available or family) // 2]
    for s in family:
        if s.quality == quality:
            return s
    qualities = [str(s.quality) for s in family if s.quality is not None]
    if not qualities:
        raise ModelError(f"{name} has no qualities: it is one model for all rates, not a family like hyperprior")
    raise ModelError(f"{name} has no quality {quality} (qualities: {', '.join(qualities)})")
