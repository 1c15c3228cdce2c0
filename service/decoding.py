"""Decoding uploads at a bounded cost: header first, pixel budget, JPEG draft mode.

`probe` reads only the header (format and size), so a request's pixel budget is checked
before any pixel is decoded. `decode` then decodes a JPEG in Pillow's draft mode (the
JPEG decoder's own 1/2, 1/4 or 1/8 scaling, never below the model's input size): a
12-megapixel photo decodes as 0.2 megapixels, in a fraction of the time and memory.
PNG has no such mode; the pixel budget bounds it. The model then sees the same canvas as
everywhere else (air3d.images.to_canvas: resized, letterboxed in a world with a frame).
"""

from __future__ import annotations

import torch
from PIL import Image

from air3d.images import CanvasLike, load_pixels, open_image


def probe(data: bytes, max_pixels: int) -> Image.Image:
    """The opened image (header read, pixels not decoded); ImageError if it is unusable."""
    return open_image(data, too_large=over_budget(max_pixels))


def over_budget(max_pixels: int) -> str:
    return f"over the limit of {max_pixels} decoded pixels per request (AIR3D_MAX_PIXELS)"


def decode(image: Image.Image, canvas: CanvasLike) -> torch.Tensor:
    """The model's canvas (3, S, S) float in [0, 1] from a probed image, JPEGs in draft mode."""
    return load_pixels(image, canvas, draft=True)
