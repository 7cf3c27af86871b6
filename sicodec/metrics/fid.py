"""FID and KID of decoded images against their originals, with the patch protocol of HiFiC and MS-ILLM.

FID and KID compare two distributions, not two images: here the distribution of 256x256 patches of the original
images and that of the same patches of the decoded images. A data set of a few dozen images has too few images
for a 2048-d Gaussian, so HiFiC (Mentzer et al., 2020) and MS-ILLM (Muckley et al., 2023) cut every image into
patches: the non-overlapping 256x256 patches of the image, plus those of the image shifted by 128 px in both axes
(cropped by 128 at the top and left). Kodak (768x512) gives 6 + 2 patches per image, 192 in all; an image under
256 px on a side gives none, under 384 none from the shifted pass. FID needs many patches to mean much: values
from a few dozen patches are dominated by estimation noise and compare only with values from the same images.

Features are the 2048-d pool3 outputs of FID's Inception-v3 (`sicodec.metrics.inception`): pytorch-fid's port of
TensorFlow's 2015-12-05 graph, each 256x256 patch resized bilinearly to 299x299 and scaled to [-1, 1]. Its
weights are pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (in the torch hub cache, where pytorch-fid
keeps it, or downloaded there with SICODEC_ALLOW_DOWNLOAD=1) or a safetensors conversion of it,
`inception_fid.safetensors`, in a folder named by $SICODEC_METRIC_WEIGHTS (see `sicodec.metrics.weights`).
Without them every entry point raises a one-line ModelError saying which file to put where; nothing is estimated.

FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) of the two feature sets' means and covariances (computed in
float64 without scipy). KID is the unbiased squared MMD with the kernel k(x, y) = (x.y / d + 1)^3, averaged over
random subsets (Binkowski et al., 2018), reported with its spread over the subsets.

Caveats: this machine has no Inception weights and no network, so the numbers of this module have not been
compared with pytorch-fid's on real weights; the structure and weight names follow pytorch-fid's code and are
tested against it. MS-ILLM computes FID with torchmetrics, whose Inception resizes differently (TensorFlow-style
bilinear), so absolute values may differ slightly from published ones; compare within one implementation.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import SicodecError
from ._inputs import as_rgb8
from .inception import FEATURES, FIDInception
from .weights import INCEPTION_FILE, locate_weights

__all__ = [
    "PATCH", "patch_corners", "count_patches", "patches", "load_inception", "patch_features", "frechet_distance",
    "fid_from_features", "kid", "scores", "FIDKID", "fid_kid",
]

PATCH = 256
_BATCH = 8  # patches per forward pass: bounds the memory of the 299x299 activations


def patch_corners(height: int, width: int, size: int = PATCH) -> list[tuple[int, int]]:
    """Top-left (y, x) of the patches of an image: the non-overlapping grid from (0, 0), then the grid from
    (size // 2, size // 2); each row-major, only whole patches."""
    corners = []
    for start in (0, size // 2):
        corners += [(y, x) for y in range(start, height - size + 1, size) for x in range(start, width - size + 1, size)]
    return corners


def count_patches(height: int, width: int, size: int = PATCH) -> int:
    """How many patches `patches` cuts from an image of this size."""
    return len(patch_corners(height, width, size))


def patches(image, size: int = PATCH) -> np.ndarray:
    """The patches of an image (uint8 HxWx3 array or PIL image) as an Nx size x size x3 uint8 array, in the
    order of `patch_corners`; N = 0 for an image under `size` px on a side."""
    img = as_rgb8(image)
    corners = patch_corners(img.shape[0], img.shape[1], size)
    if not corners:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([img[y:y + size, x:x + size] for y, x in corners])


@lru_cache(maxsize=None)
def _cached(files: tuple[Path, ...]) -> FIDInception:
    return FIDInception.from_files(files)


def load_inception(weights: str | os.PathLike | None = None, *, download: bool | None = None) -> FIDInception:
    """The per-process shared FID Inception network (CPU, frozen, eval) for the weights found (see the module
    docstring); ModelError when they are missing. Do not modify it."""
    return _cached(tuple(f.resolve() for f in locate_weights(INCEPTION_FILE, weights, download)))


def patch_features(image, model: FIDInception | None = None) -> np.ndarray:
    """The Nx2048 (float64) Inception features of the patches of one image (see `patches`); N may be 0."""
    p = patches(image)
    if not len(p):
        return np.zeros((0, FEATURES))
    model = load_inception() if model is None else model
    out = []
    with torch.inference_mode():
        for i in range(0, len(p), _BATCH):
            x = torch.from_numpy(p[i:i + _BATCH]).permute(0, 3, 1, 2).float().div_(255)
            out.append(model(x).double().numpy())
    return np.concatenate(out)


def _as_features(f, what: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] == 0:
        raise SicodecError(f"{what}: expected an NxD array of features, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise SicodecError(f"{what}: the features are not all finite")
    return f


def _feature_sets(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two NxD feature arrays (float64, finite) of one dimension D, or SicodecError."""
    a, b = _as_features(a, "first feature set"), _as_features(b, "second feature set")
    if a.shape[1] != b.shape[1]:
        raise SicodecError(f"the feature sets differ in dimension: {a.shape[1]} and {b.shape[1]}")
    return a, b


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues below 0 from rounding set to 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Frechet (2-Wasserstein) distance of the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^(1/2)) is computed as the trace of the square root of the symmetric S1^(1/2) S2 S1^(1/2), which
    has the same eigenvalues, in float64; the result is >= 0 (rounding below 0 is clipped).
    """
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.size
    if mu2.size != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise SicodecError(f"Frechet distance: means of {mu1.size} and {mu2.size} values need two {d}x{d} "
                           f"covariances, got {s1.shape} and {s2.shape}")
    root = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross)
    return max(value, 0.0)


def fid_from_features(a, b) -> float:
    """FID of two feature sets (NxD arrays, N >= 2 each; covariances with N - 1 in the denominator, like
    pytorch-fid). With fewer samples than dimensions the covariances have low rank and
    tr((S1 S2)^(1/2)) is the sum of singular values of A B^T / sqrt((n1 - 1)(n2 - 1)), A and B the centred
    features: exact, and far cheaper than a DxD square root."""
    a, b = _feature_sets(a, b)
    if len(a) < 2 or len(b) < 2:
        raise SicodecError(f"FID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    if min(len(a), len(b)) > a.shape[1]:
        return frechet_distance(mu_a, np.cov(a, rowvar=False), mu_b, np.cov(b, rowvar=False))
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    value = float(np.sum((mu_a - mu_b) ** 2) + np.sum(ca * ca) / na + np.sum(cb * cb) / nb - 2 * cross)
    return max(value, 0.0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD of two samples of one size m with the cubic polynomial kernel (diagonals left out)."""
    d, m = x.shape[1], len(x)
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID of two feature sets: (mean, standard deviation) over `subsets` random subsets of `subset_size`
    features drawn without replacement from each set (the size clipped to the smaller set, at least 2) of the
    unbiased squared MMD. Deterministic given `seed`. Can be slightly negative when the sets are alike."""
    a, b = _feature_sets(feats_a, feats_b)
    if subsets < 1 or subset_size < 2:
        raise SicodecError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise SicodecError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    values = [_mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def scores(reference_features, decoded_features, kid_subsets: int = 100, kid_subset_size: int = 1000,
           seed: int = 0) -> dict[str, float]:
    """{"fid", "kid", "kid_std"} of decoded against reference patch features (NxD arrays). SicodecError when
    either set has fewer than 2 patches."""
    n, m = len(reference_features), len(decoded_features)
    if n < 2 or m < 2:
        raise SicodecError(f"FID and KID need at least 2 patches of {PATCH}x{PATCH} on each side, got {n} and {m} "
                           f"(images under {PATCH} px on a side give none)")
    k, k_std = kid(reference_features, decoded_features, kid_subsets, kid_subset_size, seed)
    return {"fid": fid_from_features(reference_features, decoded_features), "kid": k, "kid_std": k_std}


class FIDKID:
    """Accumulates patch features of (reference, decoded) image pairs; `compute()` gives FID and KID over all.

        acc = FIDKID()                      # loads the Inception weights, or raises ModelError
        for ref, dec in pairs: acc.add(ref, dec)
        acc.compute()                       # {"fid": ..., "kid": ..., "kid_std": ..., "patches": ...}
    """

    def __init__(self, weights: str | os.PathLike | None = None, *, download: bool | None = None,
                 model: FIDInception | None = None):
        self.model = load_inception(weights, download=download) if model is None else model
        self.reference: list[np.ndarray] = []
        self.decoded: list[np.ndarray] = []

    def add(self, reference, decoded) -> None:
        """Add the patches of one original image and of its decoded version (uint8 HxWx3 arrays or PIL images)."""
        self.reference.append(patch_features(reference, self.model))
        self.decoded.append(patch_features(decoded, self.model))

    def compute(self, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> dict:
        """FID, KID (mean and spread over subsets) and the number of patches per side, over all images added."""
        ref = np.concatenate(self.reference) if self.reference else np.zeros((0, FEATURES))
        dec = np.concatenate(self.decoded) if self.decoded else np.zeros((0, FEATURES))
        out = scores(ref, dec, kid_subsets, kid_subset_size, seed)
        out["patches"] = len(ref)
        return out


def fid_kid(reference_images, decoded_images, weights: str | os.PathLike | None = None, *,
            download: bool | None = None) -> dict:
    """FID and KID (see `FIDKID.compute`) of `decoded_images` against `reference_images`, two sequences of
    uint8 HxWx3 arrays or PIL images paired by position."""
    reference_images, decoded_images = list(reference_images), list(decoded_images)
    if len(reference_images) != len(decoded_images):
        raise SicodecError(f"{len(reference_images)} reference images but {len(decoded_images)} decoded ones")
    acc = FIDKID(weights, download=download)
    for ref, dec in zip(reference_images, decoded_images):
        acc.add(ref, dec)
    return acc.compute()
