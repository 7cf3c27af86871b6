"""Image quality metrics for evaluating the codec: PSNR, MS-SSIM, LPIPS (AlexNet, v0.1), DISTS; FID and KID.

    from sicodec import metrics
    metrics.psnr(a, b); metrics.ms_ssim(a, b); metrics.lpips(a, b); metrics.dists(a, b)
    metrics.fid_kid(originals, decoded)    # over a data set, with the 256x256 patch protocol (see `fid`)

The per-image functions take two uint8 HxWx3 arrays or PIL images of one size and return a float. Importing
this package loads no network: LPIPS, DISTS and Inception weights are read on first use and kept for the process
(see `weights.locate_weights`: an explicit `weights=` path, our safetensors files in $SICODEC_METRIC_WEIGHTS or the
torch hub cache, else the original torchvision / LPIPS / DISTS / pytorch-fid files in the hub cache, downloaded
there only when SICODEC_ALLOW_DOWNLOAD=1 or download=True). For training losses
use the nn.Modules: `LPIPS.from_weights()`, `DISTS.from_weights()` (tensors in [0, 1]) and `ms_ssim_tensor`.

Note: the names `lpips` and `dists` here are the functions; import the modules' contents with
`from sicodec.metrics.lpips import ...` rather than `import sicodec.metrics.lpips as m`.
"""

from __future__ import annotations

# The submodules hold only class and function definitions (torch is already loaded by sicodec itself);
# they are imported before the functions below are bound, so `lpips` and `dists` stay functions.
from . import dists as _dists_module, lpips as _lpips_module
from .classic import ms_ssim, ms_ssim_tensor, psnr
from .dists import DISTS, dists_score as dists, load_dists
from .fid import FIDKID, fid_kid, load_inception
from .inception import FIDInception
from .lpips import LPIPS, load_lpips, lpips_score as lpips
from .weights import ENV_VAR, find_weights

__all__ = [
    "psnr", "ms_ssim", "lpips", "dists", "ms_ssim_tensor", "LPIPS", "DISTS", "load_lpips", "load_dists",
    "find_weights", "ENV_VAR", "fid_kid", "FIDKID", "FIDInception", "load_inception",
]
