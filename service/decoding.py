"""Decoding uploads at a bounded cost: header first, pixel budget, JPEG draft mode.

`probe` reads only the header (format and size), so a request's pixel budget is checked
before any pixel is decoded. `decode` then decodes a JPEG in Pillow's draft mode (the
JPEG decoder's own 1/2, 1/4 or 1/8 scaling, never below the model's input size): a
12-megapixel photo decodes as 0.2 megapixels, in a fraction of the time and memory.
PNG has no such mode; the pixel budget bounds it. The model then sees the same bilinear
resize as elsewhere (air3d.images.to_tensor).
"""

from __future__ import annotations

import io
import warnings

import torch
from PIL import Image, UnidentifiedImageError

from air3d.images import (
    ACCEPTED_FORMATS,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    to_tensor,
)


def probe(data: bytes, max_pixels: int) -> Image.Image:
    """The opened image (header read, pixels not decoded); ImageError if it is unusable."""
    if not data:
        raise ImageError("empty file: expected a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        # Pillow's own guard fires far above our budget; say ours, not Pillow's.
        raise ImageTooLargeError(over_budget(max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageError("not an image: expected a PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"corrupt or truncated image: {error}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(f"unsupported image type {image.format}; accepted: PNG, JPEG")
    return image


def over_budget(max_pixels: int) -> str:
    return f"over the limit of {max_pixels} decoded pixels per request (AIR3D_MAX_PIXELS)"


def decode(image: Image.Image, image_size: int) -> torch.Tensor:
    """(3, image_size, image_size) float in [0, 1] from a probed image."""
    try:
        if image.format == "JPEG":
            image.draft("RGB", (image_size, image_size))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"corrupt or truncated image: {error}") from None
    return to_tensor(image, image_size)
