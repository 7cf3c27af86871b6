"""Model weights as safetensors files that describe themselves (architecture and configuration)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..errors import ModelError
from ..fileio import write_bytes_atomic
from .base import LatentCodecModel
from .registry import build_model


def save_weights(model: LatentCodecModel, path: str | Path, half: bool = True, trained_steps: int = 0,
                 status: str | None = None) -> None:
    """Write `model` as safetensors (float16 by default), atomically, with its name, architecture,
    configuration and training status ('untrained', 'preliminary' or 'trained') in the metadata."""
    path = Path(path)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    status = status or ("trained" if trained_steps else "untrained")
    meta = {"sicodec.name": model.name, "sicodec.arch": model.arch,
            "sicodec.config": json.dumps(model.config), "sicodec.trained_steps": str(trained_steps), "sicodec.status": status}
    write_bytes_atomic(path, save(tensors, metadata=meta))


def load_weights(path: str | Path) -> tuple[LatentCodecModel, dict]:
    """Build the model a safetensors file describes and load its weights; returns (model, metadata)."""
    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (OSError, SafetensorError, ValueError) as e:
        raise ModelError(f"{path}: not a readable safetensors weights file ({e})") from None
    if "sicodec.arch" not in meta:
        raise ModelError(f"{path}: not a sicodec weights file (no architecture in its metadata)")
    try:
        config = json.loads(meta.get("sicodec.config", "{}"))
    except json.JSONDecodeError:
        raise ModelError(f"{path}: corrupt configuration in its metadata") from None
    model = build_model(meta["sicodec.arch"], **config)
    own = model.state_dict()
    if set(own) != set(tensors) or any(own[k].shape != tensors[k].shape for k in own):
        raise ModelError(f"{path}: weights do not match a {meta['sicodec.arch']} model with {config}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    return model.eval(), meta
