"""sicodec: learned, perceptual, progressive image compression with real files.

    data = sicodec.compress("photo.png", model="hyperprior", quality=4)
    image = sicodec.decompress(data)
"""

from .codec import compress, decompress, decompress_samples, list_models, load_model, truncate
from .errors import FormatError, ImageError, LimitError, ModelError, ModelMismatchError, SicodecError
from .image import SicodecNotice, set_max_pixels
from . import pillow_plugin as _pillow_plugin  # noqa: F401,E402  (registers .sic files with Pillow)

__version__ = "0.1.0"
__all__ = [
    "compress", "decompress", "decompress_samples", "truncate", "list_models", "load_model", "set_max_pixels",
    "SicodecError", "FormatError", "ImageError", "LimitError", "ModelError", "ModelMismatchError", "SicodecNotice",
]
