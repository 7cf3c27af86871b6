"""Turning the images given to the metric functions (uint8 HxWx3 arrays or PIL images) into arrays and tensors."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import ImageError

_CONVERTIBLE_MODES = ("RGB", "L", "P")


def as_rgb8(img, what: str = "image") -> np.ndarray:
    """A uint8 HxWx3 array from a uint8 HxWx3 array or an 8-bit PIL image (L and P converted to RGB, alpha refused)."""
    if isinstance(img, Image.Image):
        if img.mode not in _CONVERTIBLE_MODES or (img.mode == "P" and "transparency" in img.info):
            raise ImageError(f"{what}: PIL mode {img.mode} is not supported by the metrics (give an 8-bit RGB image)")
        img = np.asarray(img.convert("RGB"))
    if not isinstance(img, np.ndarray):
        raise ImageError(f"{what}: expected a uint8 HxWx3 numpy array or a PIL image, got {type(img).__name__}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"{what}: expected a uint8 HxWx3 array, got {img.dtype} of shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"{what}: the image is empty ({img.shape[1]}x{img.shape[0]})")
    return img


def rgb8_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both images as uint8 HxWx3 arrays of the same size, or ImageError."""
    a, b = as_rgb8(a, "first image"), as_rgb8(b, "second image")
    if a.shape != b.shape:
        raise ImageError(f"the images differ in size: {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}")
    return a, b


def to_tensor(img: np.ndarray, scale: float = 1 / 255, dtype=torch.float32) -> torch.Tensor:
    """uint8 HxWx3 array -> 1x3xHxW tensor multiplied by `scale` (default: values in [0, 1])."""
    return torch.tensor(img, dtype=dtype).permute(2, 0, 1).unsqueeze(0).mul_(scale)


def network_distance(model: torch.nn.Module, a, b) -> float:
    """A pretrained distance network (LPIPS, DISTS) applied to two 8-bit RGB images."""
    a, b = rgb8_pair(a, b)
    with torch.inference_mode():
        return float(model(to_tensor(a), to_tensor(b))[0])
