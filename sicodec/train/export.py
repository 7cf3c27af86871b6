"""Checkpoint -> shipped weights (safetensors) and a JSON card describing how they were made."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import SicodecError
from ..fileio import write_bytes_atomic
from ..models.registry import build_model
from ..models.weights import save_weights


def export_checkpoint(checkpoint: str | Path, name: str, out_dir: str | Path, status: str = "trained",
                      half: bool = True, card: dict | None = None) -> Path:
    """Write OUT_DIR/NAME.safetensors and OUT_DIR/NAME.json from a training checkpoint."""
    try:
        state = torch.load(checkpoint, weights_only=False)  # our own training checkpoint
    except (OSError, RuntimeError) as e:
        raise SicodecError(f"{checkpoint}: cannot read checkpoint ({e})") from None
    model = build_model(state["arch"], **state["config"])
    model.load_state_dict(state["model"])
    model.name = name
    out = Path(out_dir) / f"{name}.safetensors"
    save_weights(model, out, half=half, trained_steps=state["step"], status=status)
    info = {"name": name, "arch": state["arch"], "config": state["config"], "steps": state["step"],
            "lambda": state.get("lmbda"), "status": status, "precision": "float16" if half else "float32"}
    info.update(card or {})
    write_bytes_atomic(Path(out_dir) / f"{name}.json", (json.dumps(info, indent=1) + "\n").encode())
    return out
