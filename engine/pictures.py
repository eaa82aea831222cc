"""The picture formats the server decodes, in one place.

Pillow opens far more than pictures people send (EPS through Ghostscript, PSD, ICNS, ...),
each decoder a surface for malformed input. Every decoder of user-given bytes (uploads,
fetched URLs, files nodes load) opens them with ``formats=FORMATS``.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
NAMES = "PNG, JPEG, WEBP, GIF, BMP or TIFF"


def decode_errors() -> tuple[type[BaseException], ...]:
    """What a malformed or unsupported picture raises while it is opened and decoded."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    return (UnidentifiedImageError, OSError, PILImage.DecompressionBombError, SyntaxError,
            ValueError, EOFError, TypeError, IndexError, struct.error)


def open_picture(data: bytes) -> Image:
    """The picture in ``data``, decoded in full (a truncated file fails here, not later);
    raises one of ``decode_errors()`` for anything else."""
    from PIL import Image as PILImage

    opened = PILImage.open(io.BytesIO(data), formats=FORMATS)
    try:
        opened.load()
    except BaseException:
        opened.close()
        raise
    return opened
