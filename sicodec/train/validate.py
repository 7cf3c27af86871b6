"""Validation during training: the model codes a folder of images into real files and reads them back.

The rate is the size of each file; the distortion and perception are measured on what decoding it
returns (as `sicodec eval` does). The validation objective is the training objective with those real
numbers in place of the model's estimates, so the best checkpoint is the one that codes best.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..bench.results import DATASET_METRIC_KEYS
from ..bench.run import check_metric_weights, list_images, metric_keys
from ..errors import SicodecError
from ..evaluate import evaluate_image
from ..models.registry import build_model

VALIDATION_LOG = "validation.csv"


class Validator:
    """Validates on the first `images` files of `folder` (all by default) with the given metrics."""

    def __init__(self, folder: str, images: int | None = None, metrics=("psnr", "ms-ssim", "lpips")):
        self.files = list_images(folder)[:images] if images else list_images(folder)
        self.keys = tuple(dict.fromkeys(("psnr-rgb", *metric_keys(metrics))))  # PSNR is needed for the objective
        if any(k in DATASET_METRIC_KEYS for k in self.keys):
            raise SicodecError("FID and KID are data-set metrics, not validation metrics; measure them with "
                               "sicodec eval")
        check_metric_weights(self.keys)

    def measure(self, model, mode: str = "uniform") -> list[dict]:
        """Rows per image (and level) of real bpp, estimated bpp and the metrics, on a CPU copy; the
        untransmitted slices of a progressive model filled in `mode`."""
        coder = build_model(model.arch, **model.config)
        coder.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
        coder.name = model.name
        coder.eval()
        levels = list(range(1, coder.slices + 1)) if coder.progressive else None
        rows = []
        with tempfile.TemporaryDirectory(prefix="sicodec-val-") as tmp, torch.no_grad():
            for path in self.files:
                rows += evaluate_image(coder, path, levels, mode, 1, self.keys, Path(tmp))
        return rows

    def run(self, model, loss_fn, step: int, out_dir: Path, board=None) -> float:
        """Measure (in the fill the loss trains with), append a row to OUT/validation.csv (and TensorBoard);
        return the validation objective."""
        t = time.perf_counter()
        rows = self.measure(model, getattr(loss_fn, "fill", "uniform"))
        score = float(loss_fn.validation_score(rows))
        columns = ["bpp", "estimated_bpp", *self.keys]
        means = {c: float(np.mean([r[c] for r in rows])) for c in columns}
        path = out_dir / VALIDATION_LOG
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", *columns, "objective", "seconds"])
            w.writerow([step, *(f"{means[c]:.5f}" for c in columns), f"{score:.5f}", f"{time.perf_counter() - t:.1f}"])
        if board:
            for c, v in {**means, "objective": score}.items():
                board.add_scalar(f"validation/{c}", v, step)
        return score
