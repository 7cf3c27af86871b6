"""Image-folder dataset with random crops and flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import SicodecError
from ..image import list_image_files


class ImageFolder(torch.utils.data.Dataset):
    """RGB crops of `crop` x `crop` pixels (random position and horizontal flip when `augment`)."""

    def __init__(self, folder: str | Path, crop: int = 256, augment: bool = True):
        self.files = list_image_files(folder)
        self.crop = crop
        self.augment = augment

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            with Image.open(self.files[i]) as im:
                im = im.convert("RGB")
        except Exception as e:
            raise SicodecError(f"{self.files[i]}: cannot read image ({e})") from None
        w, h = im.size
        c = self.crop
        if w < c or h < c:
            im = im.resize((max(w, c), max(h, c)), Image.BICUBIC)
            w, h = im.size
        if self.augment:
            x0, y0 = np.random.randint(0, w - c + 1), np.random.randint(0, h - c + 1)
        else:
            x0, y0 = (w - c) // 2, (h - c) // 2
        a = np.asarray(im.crop((x0, y0, x0 + c, y0 + c)), dtype=np.float32) / 255.0
        if self.augment and np.random.rand() < 0.5:
            a = a[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
