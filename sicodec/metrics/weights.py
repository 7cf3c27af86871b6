"""Finding and reading the pretrained weights of the metric networks (LPIPS, DISTS, FID's Inception-v3).

Two forms are accepted; `locate_weights` finds them and `load_into` reads them into a network.

1. Our safetensors files, backbone and heads in one file (`lpips_alex.safetensors`, `dists_vgg16.safetensors`,
   `inception_fid.safetensors`: pytorch-fid's state dict under its own names, with or without `fc.*` and
   BatchNorm's `num_batches_tracked`), looked up, in order, at an explicit path, in the folders of
   $SICODEC_METRIC_WEIGHTS (os.pathsep-separated), then in the torch hub cache ($TORCH_HOME/hub/checkpoints, see
   `torch.hub.get_dir`). They are read with safetensors (no pickle). An explicit path is authoritative: when it
   lacks the file, nothing else is tried.
2. Without an explicit path, when no safetensors file is found: the original files, all in the torch hub cache
   under these names, from which the same tensors are assembled:

   ========  =========================  =========================================================================
   metric    file in the hub cache      contents (public URL in `ORIGINALS`)
   ========  =========================  =========================================================================
   LPIPS     alexnet-owt-7be5be79.pth   torchvision's ImageNet AlexNet; only its `features.*` convolutions are used
   LPIPS     lpips_v0.1_alex.pth        `alex.pth` (v0.1) of the `lpips` package: the five linear heads,
                                        keys `lin{i}.model.1.weight` (renamed `lin.{i}.weight`)
   DISTS     vgg16-397923af.pth         torchvision's ImageNet VGG16; only its `features.*` convolutions are used
   DISTS     dists_alpha_beta.pt        `weights.pt` of `DISTS_pytorch`: keys `alpha`, `beta`
   FID/KID   pt_inception-2015-12-05-   pytorch-fid's FID Inception-v3 (TensorFlow's 2015-12-05 graph, ported);
             6726825d.pth               the file pytorch-fid itself caches there; its `fc.*` layer is not used
   ========  =========================  =========================================================================

   The torchvision files are the ones torchvision itself caches there. These files are read with
   `torch.load(..., map_location="cpu", weights_only=True)`: the restricted unpickler, which builds tensors and
   plain containers only and runs no code from the file.

Nothing is downloaded unless allowed: by `download=True`, or, when `download` is None (the default), by
$SICODEC_ALLOW_DOWNLOAD=1. Then the missing original files are fetched from their public URLs into the hub cache
with `torch.hub.download_url_to_file` (torchvision's files checked against the hash prefix in their names).
Every failure is a `ModelError` with a one-line message saying what to put where.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelError

ENV_VAR = "SICODEC_METRIC_WEIGHTS"
DOWNLOAD_ENV_VAR = "SICODEC_ALLOW_DOWNLOAD"
LPIPS_FILE = "lpips_alex.safetensors"
DISTS_FILE = "dists_vgg16.safetensors"
INCEPTION_FILE = "inception_fid.safetensors"

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Original:
    """One original (non-safetensors) weights file: its name in the hub cache, where it is published, and how its
    tensors are renamed to ours."""

    name: str
    url: str
    convert: Callable[[Mapping[str, torch.Tensor]], Tensors]
    hash_prefix: str | None = None  # start of the file's sha256, checked on download (torchvision's naming)


def _backbone(state: Mapping[str, torch.Tensor]) -> Tensors:
    """A torchvision classifier's state dict -> its `features.*` tensors (the convolutions; `classifier.*` dropped)."""
    return {k: v for k, v in state.items() if k.startswith("features.")}


_LPIPS_HEAD = re.compile(r"lin(\d+)\.model\.1\.weight")


def _lpips_heads(state: Mapping[str, torch.Tensor]) -> Tensors:
    """`lpips` package names (`lin{i}.model.1.weight`) -> ours (`lin.{i}.weight`); other keys kept, so that
    `load_into` reports them as unexpected."""
    out = {}
    for k, v in state.items():
        m = _LPIPS_HEAD.fullmatch(k)
        out[f"lin.{m[1]}.weight" if m else k] = v
    return out


def _same_names(state: Mapping[str, torch.Tensor]) -> Tensors:
    return dict(state)


ALEXNET = Original("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                   _backbone, "7be5be79")
VGG16 = Original("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                 _backbone, "397923af")
LPIPS_HEADS = Original("lpips_v0.1_alex.pth",
                       "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
                       _lpips_heads)
DISTS_HEADS = Original("dists_alpha_beta.pt",
                       "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt", _same_names)
# The file's name ends in what looks like a hash prefix, but pytorch-fid does not check it and we could not
# verify which hash it is offline: no hash check on download.
FID_INCEPTION = Original(
    "pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    _same_names)

# The original files that together replace each safetensors file.
ORIGINALS: dict[str, tuple[Original, ...]] = {LPIPS_FILE: (ALEXNET, LPIPS_HEADS), DISTS_FILE: (VGG16, DISTS_HEADS),
                                               INCEPTION_FILE: (FID_INCEPTION,)}
_BY_NAME = {o.name: o for group in ORIGINALS.values() for o in group}


def hub_checkpoints_dir() -> Path:
    """The torch hub cache folder where torchvision-style checkpoints live ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs() -> list[Path]:
    """Folders searched when no explicit path is given: $SICODEC_METRIC_WEIGHTS (os.pathsep-separated), hub cache."""
    env = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return env + [hub_checkpoints_dir()]


def download_allowed(download: bool | None = None) -> bool:
    """`download` if given, else whether $SICODEC_ALLOW_DOWNLOAD is 1 (or true/yes/on); off by default."""
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def _lookup(filename: str, path: str | os.PathLike | None) -> tuple[Path | None, list[str]]:
    """The safetensors file `filename` (None if absent) and a description of the places looked at."""
    if path is not None:
        p = Path(path).expanduser()
        candidates = [p / filename] if p.is_dir() else [p]
        places = [str(p)]
    else:
        dirs = search_dirs()
        candidates = [d / filename for d in dirs]
        places = [f"${ENV_VAR}={d}" if i < len(dirs) - 1 else f"torch hub cache {d}" for i, d in enumerate(dirs)]
        if not os.environ.get(ENV_VAR):
            places.insert(0, f"${ENV_VAR} (not set)")
    return next((c for c in candidates if c.is_file()), None), places


def _explicit_missing(filename: str, places: list[str]) -> ModelError:
    return ModelError(
        f"metric weights {filename} not found (looked in: {places[0]}); a weights path must be that file or a folder "
        f"holding it (without one, ${ENV_VAR}, the torch hub cache and the original files there are tried)"
    )


def find_weights(filename: str, path: str | os.PathLike | None = None) -> Path:
    """Return the safetensors file `filename`: `path` (a file, or a folder holding it) if given, else from the
    search folders. Original files are not considered here (see `locate_weights`).

    An explicit `path` is authoritative: when it does not hold the file, the other places are not tried.
    Raises ModelError with a one-line message naming the places looked at and how to provide the file.
    """
    found, places = _lookup(filename, path)
    if found is not None:
        return found
    if path is not None:
        raise _explicit_missing(filename, places)
    raise ModelError(
        f"metric weights {filename} not found (looked in: {'; '.join(places)}); pass weights=PATH (file or folder) "
        f"or set {ENV_VAR} to a folder holding it, or put it in the torch hub cache"
    )


def _first_line(e: BaseException) -> str:
    """An exception's message reduced to one line (torch's are often several), or its type when it has none."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _download(original: Original, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(original.url, str(dest), hash_prefix=original.hash_prefix)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError; a hash mismatch a RuntimeError
        raise ModelError(f"cannot download {original.url} to {dest}: {_first_line(e)}") from None


def locate_weights(
    filename: str, path: str | os.PathLike | None = None, download: bool | None = None
) -> tuple[Path, ...]:
    """The files holding the weights of `filename` (LPIPS_FILE, DISTS_FILE or INCEPTION_FILE), for `load_into`.

    Either the safetensors file (see `find_weights`), or, when there is none and `path` is None, the original files
    in the torch hub cache (`ORIGINALS[filename]`), the missing ones downloaded there first if
    `download_allowed(download)`. Raises ModelError (one line) saying what to put where when neither is complete.
    """
    found, places = _lookup(filename, path)
    if found is not None:
        return (found,)
    if path is not None:
        raise _explicit_missing(filename, places)
    hub = hub_checkpoints_dir()
    originals = ORIGINALS[filename]
    allowed = download_allowed(download)
    if allowed:
        for o in originals:
            if not (hub / o.name).is_file():
                _download(o, hub / o.name)
    missing = [o.name for o in originals if not (hub / o.name).is_file()]
    if not missing:
        return tuple(hub / o.name for o in originals)
    sources = " and ".join(f"{o.name} (from {o.url})" for o in originals)
    how = " (a download was tried)" if allowed else (
        f", or set {DOWNLOAD_ENV_VAR}=1 (or pass download=True) to download them there")
    raise ModelError(
        f"metric weights {filename} not found (looked in: {'; '.join(places)}) and original files missing from the "
        f"torch hub cache ({', '.join(missing)}): put {filename} in a folder named by ${ENV_VAR} (or pass "
        f"weights=PATH), or put {sources} in {hub}{how}"
    )


def read_tensors(file: Path) -> Tensors:
    """Read all tensors of a safetensors file on the CPU; any failure is a ModelError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"cannot read metric weights {file}: {e}") from None


def read_original(file: Path) -> Tensors:
    """Read an original file (named as in `ORIGINALS`) with torch's restricted unpickler, renamed to our names."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message is many lines and suggests weights_only=False: not here
        why = next((line.strip() for line in str(e).splitlines() if "WeightsUnpickler error" in line), _first_line(e))
        raise ModelError(f"cannot read metric weights {file}: torch's weights_only loader refused it: {why}") from None
    except Exception as e:  # bad archives, truncated files, I/O errors: all mean "not a usable weights file"
        raise ModelError(f"cannot read metric weights {file}: {_first_line(e)}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"cannot read metric weights {file}: not a state dict of tensors")
    return _BY_NAME[Path(file).name].convert(state)


def read_weights(files: Iterable[str | os.PathLike]) -> Tensors:
    """All tensors of `files` (as returned by `locate_weights`) under our names; original files are recognised by
    their names in `ORIGINALS`, anything else is read as safetensors."""
    out: Tensors = {}
    for f in map(Path, files):
        tensors = read_original(f) if f.name in _BY_NAME else read_tensors(f)
        twice = sorted(set(out) & set(tensors))
        if twice:
            raise ModelError(f"metric weights {f} repeat tensors of the other files: {', '.join(twice[:4])}")
        out.update(tensors)
    return out


def _counter(key: str) -> bool:
    """BatchNorm's `num_batches_tracked`: a training counter, not a weight; files may have it or not."""
    return key.endswith(".num_batches_tracked")


def load_tensors(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Load `tensors` into `module` strictly (every tensor present, no extra one, same shapes; BatchNorm's
    `num_batches_tracked` counters may be absent) or raise ModelError naming `source`."""
    own = {k: v for k, v in module.state_dict().items() if not _counter(k)}
    tensors = {k: v for k, v in tensors.items() if not _counter(k)}
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or extra or wrong:
        parts = [f"{label}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                 for label, names in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if names]
        raise ModelError(f"metric weights {source} do not fit {type(module).__name__} ({'; '.join(parts)})")
    module.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)


def load_into(module: torch.nn.Module, files: str | os.PathLike | Iterable[str | os.PathLike],
              convert: Callable[[Tensors], Tensors] | None = None) -> None:
    """Load `files` (one file or several, see `read_weights`), passed through `convert` if given, into `module`
    strictly (see `load_tensors`) or raise ModelError."""
    files = (files,) if isinstance(files, (str, os.PathLike)) else tuple(files)
    tensors = read_weights(files)
    load_tensors(module, convert(tensors) if convert else tensors, " + ".join(str(f) for f in files))


class PretrainedNet(torch.nn.Module):
    """A frozen metric network whose weights file is `weights_file` (found by `locate_weights`)."""

    weights_file: str

    @classmethod
    def convert(cls, tensors: Tensors) -> Tensors:
        """The tensors of the weights files -> the ones this network loads (here: unchanged)."""
        return tensors

    @classmethod
    def from_weights(cls, weights: str | os.PathLike | None = None, *, download: bool | None = None):
        """A new frozen instance in eval mode, weights found by `locate_weights` (a safetensors file, or the
        original files in the torch hub cache, downloaded only if `download` or $SICODEC_ALLOW_DOWNLOAD allows it);
        ModelError if absent or unfit."""
        return cls.from_files(locate_weights(cls.weights_file, weights, download))

    @classmethod
    def from_files(cls, files: tuple[Path, ...]):
        """A new frozen instance in eval mode, loaded from `files` as returned by `locate_weights`."""
        model = cls()
        load_into(model, files, cls.convert)
        return model.requires_grad_(False).eval()
