"""Finding and reading the pretrained weights of the perceptual metrics (LPIPS, DISTS).

Files are looked up, in order, at an explicit path, in $SICODEC_METRIC_WEIGHTS (folders), then in the torch
hub cache ($TORCH_HOME/hub/checkpoints). Nothing is ever downloaded, and only safetensors files are read (no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ModelError

ENV_VAR = "SICODEC_METRIC_WEIGHTS"
LPIPS_FILE = "lpips_alex.safetensors"
DISTS_FILE = "dists_vgg16.safetensors"


def hub_checkpoints_dir() -> Path:
    """The torch hub cache folder where torchvision-style checkpoints live ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs() -> list[Path]:
    """Folders searched when no explicit path is given: $SICODEC_METRIC_WEIGHTS (os.pathsep-separated), hub cache."""
    env = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return env + [hub_checkpoints_dir()]


def find_weights(filename: str, path: str | os.PathLike | None = None) -> Path:
    """Return the weights file `filename`: `path` (a file, or a folder holding it) if given, else the search folders.

    An explicit `path` is authoritative: when it does not hold the file, the other places are not tried.
    Raises ModelError with a one-line message naming the places looked at and how to provide the file.
    """
    if path is not None:
        p = Path(path).expanduser()
        candidates = [p / filename] if p.is_dir() else [p]
        places = [str(p)]
    else:
        dirs = search_dirs()
        candidates = [d / filename for d in dirs]
        places = [f"${ENV_VAR}={d}" if i < len(dirs) - 1 else f"torch hub cache {d}" for i, d in enumerate(dirs)]
        if not os.environ.get(ENV_VAR):
            places.insert(0, f"${ENV_VAR} (not set)")
    for c in candidates:
        if c.is_file():
            return c
    raise ModelError(
        f"metric weights {filename} not found (looked in: {'; '.join(places)}); pass weights=PATH (file or folder) "
        f"or set {ENV_VAR} to a folder holding it, or put it in the torch hub cache; nothing is downloaded"
    )


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """Read all tensors of a safetensors file on the CPU; any failure is a ModelError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"cannot read metric weights {file}: {e}") from None


def load_into(module: torch.nn.Module, file: Path) -> None:
    """Load `file` into `module` strictly (every tensor present, no extra one, same shapes) or raise ModelError."""
    tensors = read_tensors(file)
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or extra or wrong:
        parts = [f"{label}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                 for label, names in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if names]
        raise ModelError(f"metric weights {file} do not fit {type(module).__name__} ({'; '.join(parts)})")
    module.load_state_dict({k: v.float() for k, v in tensors.items()})
