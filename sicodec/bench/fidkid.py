"""FID and KID in `sicodec bench` and `sicodec eval`: measured per rate point over all images, not per image.

The workers that code an image compute the Inception features of its patches (see `sicodec.metrics.fid`), once
for the original and once per point for what decoding returned, and hand them back inside the image's rows under
FEATURES. `per_point` takes them out again, so the rows stay plain JSON, and computes FID and KID per point from
all images' patches. `check_patches` fails before any coding when the images are too small to give patches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SicodecError
from .results import DATASET_METRIC_KEYS

FEATURES = "_patch_features"
"""Row field carrying (reference features, decoded features), Nx2048 arrays, from a worker to `per_point`."""


def wanted(keys) -> bool:
    """Whether the metric keys ask for FID or KID."""
    return any(k in DATASET_METRIC_KEYS for k in keys)


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    from ..image import open_image

    try:
        with Image.open(path) as im:  # the header only; the orientation does not change the patch count
            return im.size
    except (OSError, ValueError):
        return open_image(path).size  # raises the usual ImageError


def check_patches(files, keys) -> dict:
    """When FID or KID is asked for: a note for the results' meta (protocol, patch count), or SicodecError before
    any coding when `files` give under 2 patches. Without them: {}."""
    from ..metrics.fid import PATCH, count_patches

    if not wanted(keys):
        return {}
    n = sum(count_patches(h, w) for w, h in map(_size, files))
    if n < 2:
        raise SicodecError(f"FID and KID need at least 2 patches of {PATCH}x{PATCH} from the images, these give {n} "
                           f"(an image gives none under {PATCH} px on a side); leave fid and kid out of the metrics")
    return {"fid-kid": f"per point over all images: FID Inception-v3 (pytorch-fid weights) pool3 features of "
                       f"{PATCH}x{PATCH} patches, non-overlapping plus a pass shifted by {PATCH // 2} px "
                       f"({n} patches of the originals); KID over 100 subsets of up to 1000 patches, kid_std its "
                       f"spread over them"}


def features(pixels: np.ndarray) -> np.ndarray:
    """The patch features of one image with the process's shared Inception network."""
    from ..metrics.fid import patch_features

    return patch_features(pixels)


def attach(row: dict, reference: np.ndarray, decoded: list[np.ndarray]) -> dict:
    """`row` with the features of its original and of its decoded image(s) (all sampled decodes of a point)."""
    row[FEATURES] = (reference, np.concatenate(decoded))
    return row


def per_point(rows: list[dict], keys) -> tuple[list[dict], dict[str, list[float]]]:
    """The rows without their features, and {"fid", "kid", "kid_std"} lists (as asked for by `keys`) with one
    value per point in ascending order, each over all images of that point (in image-name order, so the KID
    subsets do not depend on the order the workers finished in)."""
    from ..metrics.fid import scores

    clean = [{k: v for k, v in r.items() if k != FEATURES} for r in rows]
    if not wanted(keys):
        return clean, {}
    groups: dict = {}
    for r in rows:
        if FEATURES not in r:
            raise SicodecError(f"row of {r.get('image')!r} at point {r.get('point')!r} carries no patch features")
        groups.setdefault(r["point"], []).append(r)
    names = [k for k in DATASET_METRIC_KEYS if k in keys] + (["kid_std"] if "kid" in keys else [])
    out: dict[str, list[float]] = {k: [] for k in names}
    for point in sorted(groups):
        group = sorted(groups[point], key=lambda r: str(r.get("image", "")))
        ref = np.concatenate([r[FEATURES][0] for r in group])
        dec = np.concatenate([r[FEATURES][1] for r in group])
        s = scores(ref, dec)
        for k in out:
            out[k].append(s[k])
    return clean, out
