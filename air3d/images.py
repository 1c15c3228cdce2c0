"""Image decoding and encoding at the edges of air3d (service, CLI), with clear errors.

Decoding is Pillow's. Every decoded image is converted to RGB and taken to the model's
square canvas (`Canvas`, `to_canvas`): the one way images enter a model (data sets,
evaluate, batch infer, the service). In a world without a frame the image is resized to the
whole canvas (bilinear, aspect ratio not kept: the model sees the whole picture). In a world
with a frame (CLEVR's 320 x 240) it is resized to the canvas's width and the frame's rows
and placed in the centred rows; the bands above and below are the world's background after
the tone curve: exactly what our renderer writes there (SceneRenderer._letterbox).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from air3d.renderer.world import World

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: refuse images above this many pixels
ACCEPTED_FORMATS = ("PNG", "JPEG")


@dataclass(frozen=True)
class Canvas:
    """The model's square input: `size` pixels a side, the image in rows [first, last),
    the other rows `fill` (stored pixel values in [0, 1])."""

    size: int
    rows: tuple[int, int] | None = None  # None: the image fills every row
    fill: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def of(cls, where: Canvas | World | int) -> Canvas:
        """The canvas of a world (its frame and background), or a plain square of a size."""
        if isinstance(where, Canvas):
            return where
        if isinstance(where, int):
            return cls(where)
        if where.frame is None:
            return cls(where.image_size)
        return cls(where.image_size, where.frame_rows, band_color(where))

    @property
    def image_rows(self) -> tuple[int, int]:
        return self.rows or (0, self.size)


def band_color(world: World) -> tuple[float, float, float]:
    """The world's background through its tone curve, min(1, exposure v) ** (1 / gamma),
    as Appearance.tone computes it in float32: the letterbox bands' stored colour."""
    linear = torch.tensor(world.background, dtype=torch.float32)
    exposed = (linear * world.tone.exposure).clamp(min=1e-6, max=1.0)
    return tuple(exposed.pow(1.0 / world.tone.gamma).tolist())


CanvasLike = Canvas | int  # an int: a square canvas of that size without a frame


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


class ImageTooLargeError(ImageError):
    """An image whose pixel count is over MAX_IMAGE_PIXELS (possibly a decompression bomb)."""


class UnsupportedImageError(ImageError):
    """A decodable file in a format that air3d does not accept."""


def decode_image(
    data: bytes, canvas: CanvasLike, max_pixels: int = MAX_IMAGE_PIXELS
) -> torch.Tensor:
    """Takes PNG or JPEG bytes to the canvas: a float tensor (3, S, S) in [0, 1]."""
    image = open_image(
        data, too_large=f"image too large to decode safely (over {max_pixels} pixels)"
    )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    return load_pixels(image, canvas)


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


def load_pixels(image: Image.Image, canvas: CanvasLike, draft: bool = False) -> torch.Tensor:
    """Decodes an opened image to the canvas (3, S, S) float in [0, 1]. draft: let a JPEG
    decode at its own 1/2, 1/4 or 1/8 scale, never below the size it is resized to (far
    cheaper for large photos; the result is resized either way)."""
    canvas = Canvas.of(canvas)
    first, last = canvas.image_rows
    try:
        if draft and image.format == "JPEG":
            image.draft("RGB", (canvas.size, last - first))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"corrupt or truncated image: {error}") from None
    return to_canvas(image, canvas)


def to_canvas(image: Image.Image, canvas: CanvasLike) -> torch.Tensor:
    """Takes a PIL image of any size to the canvas (3, S, S) float in [0, 1]: resized
    (bilinear) to the canvas's width and its image rows, the other rows its fill."""
    canvas = Canvas.of(canvas)
    first, last = canvas.image_rows
    image = image.convert("RGB")
    if image.size != (canvas.size, last - first):
        image = image.resize((canvas.size, last - first), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0  # (rows, S, 3)
    pixels = torch.from_numpy(array).permute(2, 0, 1)
    if (first, last) == (0, canvas.size):
        return pixels.contiguous()
    out = torch.tensor(canvas.fill, dtype=torch.float32)[:, None, None].repeat(
        1, canvas.size, canvas.size
    )
    out[:, first:last] = pixels
    return out


def read_image(path: str | Path, canvas: CanvasLike) -> torch.Tensor:
    """Reads an image file to the canvas; ImageError naming the file if it cannot be used."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return decode_image(data, canvas)
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


def resize_canvas(images: torch.Tensor, source: Canvas, target: Canvas) -> torch.Tensor:
    """Images (B, 3, S, S) on the source canvas to the target canvas (B, 3, T, T): the image
    rows resized as to_canvas resizes a file (bilinear, antialiased as Pillow's), the other
    rows the target's fill. What to_canvas would give from the original, to about 1/255."""
    first, last = source.image_rows
    rows = target.image_rows
    frame = torch.nn.functional.interpolate(
        images[:, :, first:last],
        size=(rows[1] - rows[0], target.size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    ).clamp(0.0, 1.0)
    if rows == (0, target.size):
        return frame
    out = images.new_tensor(target.fill)[None, :, None, None].repeat(
        len(images), 1, target.size, target.size
    )
    out[:, :, rows[0] : rows[1]] = frame
    return out
