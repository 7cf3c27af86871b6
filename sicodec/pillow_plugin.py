"""Pillow plugin for .sic files, registered when `sicodec` is imported.

    import sicodec
    from PIL import Image, ImageSequence

    im = Image.open("photo.sic")       # decodes every level the file holds (on load, like any Pillow image)
    im.n_frames                        # levels in the file (progressive models); 1 for the hyperprior
    im.seek(0)                         # frame k is level k + 1; after open the frame is the last (all levels)
    for frame in ImageSequence.Iterator(im): ...    # level 1, 2, ... : a progressive preview
    im.save("photo.sic", model="sic", level=3, seed=0)   # also quality= and bpp=, as in sicodec.compress

Levels are frames because Pillow's `open` takes no decoding options and `draft` asks for a size, not a level;
`seek` is Pillow's own way to choose one of several images in a file. Untransmitted slices are filled with the
`ancestral` mode and the seed stored in the file (`sicodec.decompress` offers the other modes and seeds).

`info` carries `sic_model`, `sic_levels` (levels present), `sic_levels_total` (levels the encoder wrote),
`sic_level` (the level of the loaded frame), `sic_seed` and the `icc_profile`. Errors: a damaged or unreadable
.sic file raises `UnidentifiedImageError` (an OSError) with the reason; decoding errors (model not installed,
other weights) raise OSError on load; a file over the pixel limit raises `DecompressionBombError`; saving raises
`sicodec.SicodecError` (and Pillow removes the partly written file).
"""

from __future__ import annotations

import io

from PIL import Image, ImageFile, UnidentifiedImageError

from .bitstream import SIGNATURE, parse
from .errors import FormatError, LimitError, SicodecError

FORMAT = "SIC"
SAVE_OPTIONS = ("model", "quality", "level", "bpp", "seed", "refine")


def _accept(prefix: bytes) -> bool:
    return prefix[: len(SIGNATURE)] == SIGNATURE


def _progressive(model: str) -> bool:
    """Whether files of `model` hold one section per level (SIC) rather than a fixed pair (hyperprior)."""
    from .models.registry import REGISTRY

    spec = REGISTRY.get(model)
    return spec.arch == "sic" if spec is not None else model.startswith("sic")


class SicImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "sicodec learned image (.sic)"

    def _open(self) -> None:
        assert self.fp is not None
        data = self.fp.read()
        try:
            f = parse(data)
        except LimitError as e:
            raise Image.DecompressionBombError(str(e)) from None
        except (FormatError, SicodecError) as e:
            raise UnidentifiedImageError(f"cannot read .sic file: {e}") from None
        h = f.header
        self._sic_data = data
        self._sic_progressive = _progressive(h.model)
        levels = len(f.sections) - 1 if self._sic_progressive else 1
        if levels < 1 or (not self._sic_progressive and len(f.sections) < 2):
            raise UnidentifiedImageError("cannot read .sic file: it is truncated before its first level")
        self._sic_levels = levels
        self._size = (h.width, h.height)
        self._mode = "L" if h.grey else "RGB"
        self.info.update(sic_model=h.model, sic_levels=levels, sic_seed=h.seed,
                         sic_levels_total=h.sections_total - 1 if self._sic_progressive else 1)
        if h.icc_profile:
            self.info["icc_profile"] = h.icc_profile
        self._sic_frame = levels - 1  # all levels present, until seek() chooses another
        self._sic_loaded: int | None = None

    @property
    def n_frames(self) -> int:
        return self._sic_levels

    @property
    def is_animated(self) -> bool:
        return self._sic_levels > 1

    def seek(self, frame: int) -> None:
        if not self._seek_check(frame):
            return
        self._sic_frame = frame

    def tell(self) -> int:
        return self._sic_frame

    def load(self):
        if self._sic_loaded != self._sic_frame:
            from .codec import decompress

            level = self._sic_frame + 1 if self._sic_progressive else None
            try:
                image = decompress(self._sic_data, level=level)
            except SicodecError as e:
                raise OSError(f"cannot decode .sic file: {e}") from e
            if self.fp is not None and self._exclusive_fp:
                self.fp.close()
            self.fp = io.BytesIO(image.tobytes())
            self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self.mode)]
            self._sic_loaded = self._sic_frame
            self.info["sic_level"] = level
        return super().load()

    def load_seek(self, pos: int) -> None:
        # Defined so that Pillow reads the decoded pixels from self.fp, never by mapping the .sic file itself.
        assert self.fp is not None
        self.fp.seek(pos)


def _save(im: Image.Image, fp, filename) -> None:
    from .codec import compress

    options = {k: im.encoderinfo[k] for k in SAVE_OPTIONS if im.encoderinfo.get(k) is not None}
    fp.write(compress(im, **options))


def register() -> None:
    Image.register_open(FORMAT, SicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".sic")
    Image.register_mime(FORMAT, "image/x-sic")


register()
