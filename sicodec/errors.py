"""Exceptions raised by sicodec. Every failure a user can cause is a `SicodecError` with a message."""


class SicodecError(Exception):
    """Base class: the CLI prints its message on one line and exits non-zero."""


class FormatError(SicodecError):
    """A .sic file is malformed, truncated, corrupted or not a .sic file."""


class ModelMismatchError(SicodecError):
    """A file was made with other model weights than the ones available for decoding."""


class ImageError(SicodecError):
    """An input image cannot be read or is of a kind sicodec refuses."""


class LimitError(SicodecError):
    """An image or file exceeds a configured safety limit (pixels, bytes)."""


class ModelError(SicodecError):
    """A model name, weights file or option is unknown or invalid."""
