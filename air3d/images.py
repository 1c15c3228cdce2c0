"""Image decoding and encoding at the edges of air3d (service, CLI), with clear errors.

Decoding is Pillow's. Every decoded image is converted to RGB and resized to the model's
square input (bilinear, aspect ratio not kept: the model sees the whole frame).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: refuse images above this many pixels
ACCEPTED_FORMATS = ("PNG", "JPEG")


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


class ImageTooLargeError(ImageError):
    """An image whose pixel count is over MAX_IMAGE_PIXELS (possibly a decompression bomb)."""


class UnsupportedImageError(ImageError):
    """A decodable file in a format that air3d does not accept."""


def decode_image(data: bytes, image_size: int, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Takes PNG or JPEG bytes to a float tensor (3, image_size, image_size) in [0, 1]."""
    image = open_image(
        data, too_large=f"image too large to decode safely (over {max_pixels} pixels)"
    )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    return load_pixels(image, image_size)


def open_image(data: bytes, too_large: str) -> Image.Image:
    """The opened image (header read, pixels not decoded); ImageError if it is unusable.
    too_large: the message when Pillow's decompression-bomb guard fires (callers name their
    own limit, which is far below Pillow's)."""
    if not data:
        raise ImageError("empty file: expected a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageTooLargeError(too_large) from None
    except UnidentifiedImageError:
        raise ImageError("not an image: expected a PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"corrupt or truncated image: {error}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(f"unsupported image type {image.format}; accepted: PNG, JPEG")
    return image


def load_pixels(image: Image.Image, image_size: int, draft: bool = False) -> torch.Tensor:
    """Decodes an opened image to (3, image_size, image_size) float in [0, 1]. draft: let a
    JPEG decode at its own 1/2, 1/4 or 1/8 scale, never below image_size (far cheaper for
    large photos; the result is resized to image_size either way)."""
    try:
        if draft and image.format == "JPEG":
            image.draft("RGB", (image_size, image_size))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"corrupt or truncated image: {error}") from None
    return to_tensor(image, image_size)


def to_tensor(image: Image.Image, image_size: int) -> torch.Tensor:
    """Takes a PIL image to (3, image_size, image_size) float in [0, 1]."""
    image = image.convert("RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_image(path: str | Path, image_size: int) -> torch.Tensor:
    """Reads an image file; ImageError naming the file if it cannot be used."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return decode_image(data, image_size)
    except ImageError as error:
        raise type(error)(f"{path}: {error}") from None


def to_pil(image: torch.Tensor) -> Image.Image:
    """Takes (3, H, W) float in [0, 1] to an RGB PIL image."""
    array = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
    return Image.fromarray(array.astype(np.uint8), "RGB")


def encode_png(image: torch.Tensor) -> bytes:
    """Takes (3, H, W) float in [0, 1] to PNG bytes."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()
