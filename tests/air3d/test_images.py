"""air3d.images: decoding with clear errors at the edges (service, CLI), encoding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from air3d.images import (
    MAX_IMAGE_PIXELS,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    decode_image,
    encode_png,
    read_image,
    to_pil,
)


def _encoded(fmt: str, size: tuple[int, int] = (20, 10), mode: str = "RGB") -> bytes:
    image = Image.new(mode, size, color=(200, 40, 10) if mode == "RGB" else 128)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(width: int, height: int) -> bytes:
    """A small PNG file whose header claims width x height RGB pixels (data: almost none)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def test_errors_are_value_errors() -> None:
    assert issubclass(ImageError, ValueError)
    assert issubclass(ImageTooLargeError, ImageError)
    assert issubclass(UnsupportedImageError, ImageError)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decodes_png_and_jpeg_to_the_model_size(fmt: str) -> None:
    image = decode_image(_encoded(fmt), 16)
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    # A uniform colour survives resizing (JPEG: up to its quantisation).
    expected = torch.tensor([200, 40, 10]) / 255
    torch.testing.assert_close(image.mean((1, 2)), expected, atol=0.03, rtol=0)


def test_grey_and_alpha_images_become_rgb() -> None:
    assert decode_image(_encoded("PNG", mode="L"), 8).shape == (3, 8, 8)
    assert decode_image(_encoded("PNG", mode="RGBA"), 8).shape == (3, 8, 8)


def test_png_round_trip_is_exact() -> None:
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 12, 12)).float() / 255
    torch.testing.assert_close(decode_image(encode_png(image), 12), image, atol=1e-6, rtol=0)
    assert to_pil(image).size == (12, 12)


def test_empty_file() -> None:
    with pytest.raises(ImageError, match="empty file: expected a PNG or JPEG image"):
        decode_image(b"", 64)


def test_not_an_image() -> None:
    with pytest.raises(ImageError, match="not an image: expected a PNG or JPEG file"):
        decode_image(b"hello, this is text and not a picture", 64)


def test_truncated_png() -> None:
    noisy = Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48)
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    data = buffer.getvalue()
    with pytest.raises(ImageError, match="corrupt or truncated image"):
        decode_image(data[: len(data) // 2], 64)


def test_gif_is_unsupported() -> None:
    with pytest.raises(UnsupportedImageError, match="unsupported image type GIF; accepted: PNG"):
        decode_image(_encoded("GIF", mode="L"), 64)


def test_decompression_bomb_header_is_refused_before_decoding() -> None:
    """A 100 000 x 100 000 PNG header with no pixel data behind it."""
    assert len(_png_header(100_000, 100_000)) < 200
    with pytest.raises(ImageTooLargeError, match="too large"):
        decode_image(_png_header(100_000, 100_000), 64)


def test_image_over_our_limit_but_under_pillows() -> None:
    side = int((MAX_IMAGE_PIXELS + 1_000_000) ** 0.5)  # over ours, under Pillow's 89 M
    with pytest.raises(ImageTooLargeError, match=rf"{side}x{side} = \d+ pixels; the limit is"):
        decode_image(_png_header(side, side), 64)


def test_small_max_pixels() -> None:
    with pytest.raises(ImageTooLargeError, match=r"image is 20x10 = 200 pixels; the limit is 199"):
        decode_image(_encoded("PNG"), 64, max_pixels=199)
    assert decode_image(_encoded("PNG"), 64, max_pixels=200).shape == (3, 64, 64)


def test_read_image_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(_encoded("PNG"))
    assert read_image(good, 8).shape == (3, 8, 8)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(ImageError, match=r"bad\.png: not an image"):
        read_image(bad, 8)
    gif = tmp_path / "anim.gif"
    gif.write_bytes(_encoded("GIF", mode="L"))
    with pytest.raises(UnsupportedImageError, match=r"anim\.gif: unsupported image type GIF"):
        read_image(gif, 8)
    with pytest.raises(ImageError, match=r"missing\.png: cannot read"):
        read_image(tmp_path / "missing.png", 8)
