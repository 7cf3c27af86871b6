"""Published rate-quality curves of other systems, shipped as results JSON (the layout of `sicodec.bench.results`).

Each file is named `<dataset>_<reference>.json`; its "description" and "meta" name the source. Load them with

    from sicodec.bench.references import list_references, load_reference
    list_references()                     # ['kodak/compressai-hyperprior-mse', 'kodak/hific', ...]
    load_reference("kodak/hific")         # a validated results dict; "hific" alone works when unambiguous
"""

from __future__ import annotations

from importlib import resources

from ...errors import SicodecError
from ..results import validate_results

__all__ = ["list_references", "load_reference", "load_references"]


def _files() -> dict[str, object]:
    """'dataset/name' -> the file, for every JSON file in this folder."""
    out = {}
    for entry in resources.files(__name__).iterdir():
        stem = entry.name[:-5] if entry.name.endswith(".json") else None
        if stem and "_" in stem:
            dataset, name = stem.split("_", 1)
            out[f"{dataset}/{name}"] = entry
    return dict(sorted(out.items()))


def list_references(dataset: str | None = None) -> list[str]:
    """The available references as 'dataset/name', optionally only those of `dataset` (for example 'kodak')."""
    return [k for k in _files() if dataset is None or k.split("/", 1)[0] == dataset]


def load_reference(name: str) -> dict:
    """The results dict of reference `name` ('kodak/hific', or 'hific' when only one data set has it), validated."""
    import json

    files = _files()
    key = name if name in files else None
    if key is None:
        matches = [k for k in files if k.split("/", 1)[1] == name]
        if len(matches) > 1:
            raise SicodecError(f"reference {name!r} is ambiguous: {', '.join(matches)}")
        key = matches[0] if matches else None
    if key is None:
        raise SicodecError(f"unknown reference {name!r}; available: {', '.join(files) or 'none'}")
    try:
        data = json.loads(files[key].read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SicodecError(f"reference {key}: cannot read its JSON file: {e}") from None
    return validate_results(data, where=f"reference {key}")


def load_references(dataset: str | None = "kodak") -> list[dict]:
    """All references of `dataset` (all data sets when None), as validated results dicts."""
    return [load_reference(k) for k in list_references(dataset)]
