"""Model weights as safetensors files that describe themselves (architecture and configuration)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..errors import ModelError, SicodecError
from ..fileio import write_bytes_atomic
from .base import LatentCodecModel
from .registry import _architectures, build_model


INT8_SCALE = ".int8_scale"  # suffix of the float32 scales (one per row) of a tensor stored in int8


def save_weights(model: LatentCodecModel, path: str | Path, half: bool = True, trained_steps: int = 0,
                 status: str | None = None) -> None:
    """Write `model` as safetensors, atomically, with its name, architecture, configuration and
    training status ('untrained', 'preliminary' or 'trained') in the metadata. `half` (the default)
    stores float16, and the conv weights of `model.int8_parts` in int8 (`_int8_rows`)."""
    path = Path(path)
    tensors, int8 = {}, tuple(f"{p}." for p in model.int8_parts) if half else ()
    for k, v in model.state_dict().items():
        if v.ndim == 4 and v.is_floating_point() and k.startswith(int8):
            tensors[k], tensors[k + INT8_SCALE] = _int8_rows(v)
        else:
            tensors[k] = (v.half() if half and v.is_floating_point() else v).contiguous()
    status = status or ("trained" if trained_steps else "untrained")
    meta = {"sicodec.name": model.name, "sicodec.arch": model.arch,
            "sicodec.config": json.dumps(model.config), "sicodec.trained_steps": str(trained_steps), "sicodec.status": status}
    write_bytes_atomic(path, save(tensors, metadata=meta))


def precision(model: LatentCodecModel) -> str:
    """How `save_weights(model)` stores the weights, in words (for cards)."""
    return f"float16; the conv weights of {', '.join(model.int8_parts)} int8, one float32 scale per row"


def _int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w -> (int8 q, float32 scale per row of the first dimension) with w ~ q * scale, |q| <= 127."""
    w = w.detach().float().cpu()
    peak = w.abs().flatten(1).amax(1)
    scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
    q = torch.round(w / scale.view(-1, *[1] * (w.ndim - 1))).clamp(-127, 127)
    return q.to(torch.int8).contiguous(), scale.contiguous()


def _expand_int8(path: Path, tensors: dict) -> dict:
    """Tensors stored in int8 (with their INT8_SCALE rows) -> float32; anything malformed is refused."""
    out = {k: v for k, v in tensors.items() if not k.endswith(INT8_SCALE)}
    for k in tensors:
        if not k.endswith(INT8_SCALE):
            continue
        base, scale = k[: -len(INT8_SCALE)], tensors[k]
        q = out.get(base)
        if (q is None or q.dtype != torch.int8 or q.ndim < 1 or scale.dtype != torch.float32
                or tuple(scale.shape) != (q.shape[0],) or not torch.isfinite(scale).all()):
            raise ModelError(f"{path}: corrupt int8 weights ({base})")
        out[base] = q.float() * scale.view(-1, *[1] * (q.ndim - 1))
    stray = [k for k, v in out.items() if v.dtype == torch.int8]
    if stray:
        raise ModelError(f"{path}: int8 weights without their scales ({stray[0]})")
    return out


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
    arch = meta["sicodec.arch"]
    if not isinstance(config, dict):
        raise ModelError(f"{path}: corrupt configuration in its metadata (not a JSON object)")
    tensors = _expand_int8(path, tensors)
    _check_against_tensors(path, arch, config, tensors)
    model = build_model(arch, **config)
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    return model.eval(), meta


def _ints(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _ints(v)
    elif isinstance(value, list):
        for v in value:
            yield from _ints(v)


def _check_against_tensors(path: Path, arch: str, config: dict, tensors: dict) -> None:
    """Refuse metadata that does not describe the tensors, before allocating the model it describes.

    Every size in a configuration is a tensor dimension (or smaller), so a larger number is a lie;
    the model is then built on the meta device (no memory) and its tensor names and shapes compared
    with the file's. Non-finite weights are refused too."""
    lie = ModelError(f"{path}: its metadata describe a {arch} model with {json.dumps(config)}, "
                     "which does not match the weights in the file")
    largest = max((max(t.shape, default=1) for t in tensors.values()), default=0)
    if any(not 0 <= v <= largest for v in _ints(config)):
        raise lie
    _architectures()  # import the model modules outside the meta device
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(arch, **config).state_dict().items()}
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    except (SicodecError, ValueError, RuntimeError, TypeError, ZeroDivisionError) as e:
        raise ModelError(f"{path}: invalid configuration for {arch} in its metadata ({e})") from None
    if set(shapes) != set(tensors) or any(shapes[k] != tuple(tensors[k].shape) for k in shapes):
        raise lie
    for k, v in tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ModelError(f"{path}: weights contain non-finite values ({k})")
