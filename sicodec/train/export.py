"""Checkpoint -> shipped weights (safetensors) and a JSON card describing how they were made and how they do."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SicodecError
from ..fileio import check_output, write_bytes_atomic
from ..models.registry import WEIGHTS_DIR, build_model
from ..models.weights import precision, save_weights
from .loop import load_checkpoint


def export_checkpoint(checkpoint: str | Path, name: str, out_dir: str | Path | None = None, status: str = "trained",
                      half: bool = True, card: dict | None = None, eval_folder: str | None = None,
                      eval_metrics=("psnr", "ms-ssim", "lpips", "dists"), force: bool = True) -> Path:
    """Write OUT_DIR/NAME.safetensors and OUT_DIR/NAME.json (OUT_DIR: the package's weights folder).

    A checkpoint of a run with a moving average of its weights (`--ema`) exports that average.

    With `eval_folder`, the exported weights (as shipped, e.g. float16) are evaluated there on real
    files and the averages go into the card.
    """
    if not Path(checkpoint).is_file():
        raise SicodecError(f"{checkpoint}: no such checkpoint")
    state = load_checkpoint(Path(checkpoint))
    out_dir = Path(out_dir) if out_dir else WEIGHTS_DIR
    out = check_output(out_dir / f"{name}.safetensors", force)
    model = build_model(state["arch"], **state["config"])
    model.load_state_dict(state["ema"]["weights"] if "ema" in state else state["model"])
    model.name = name
    steps = state.get("recipe", {}).get("init_steps", 0) + state["step"]  # the --init weights' steps count
    save_weights(model, out, half=half, trained_steps=steps, status=status)
    info = {"name": name, "arch": state["arch"], "config": state["config"], "steps": steps,
            "lambda": state.get("lmbda") or None, "status": status,
            "precision": precision(model) if half else "float32"}
    if "recipe" in state:
        info["recipe"] = state["recipe"]
    info.update(card or {})
    if eval_folder:
        from ..evaluate import evaluate_results

        results = evaluate_results(str(out), eval_folder, metrics=eval_metrics)
        mode = {"mode": results["meta"]["mode"]} if results["meta"]["mode"] else {}
        info["results"] = {"folder": Path(eval_folder).name, "images": len({r["image"] for r in results["per_image"]}),
                           **mode, **results["results"]}
    write_bytes_atomic(out.with_suffix(".json"), (json.dumps(info, indent=1) + "\n").encode())
    return out
