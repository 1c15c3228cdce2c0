"""air3d.images: decoding with clear errors at the edges (service, CLI), encoding."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from air3d.images import (
    MAX_IMAGE_PIXELS,
    Canvas,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    band_color,
    decode_image,
    encode_png,
    read_image,
    to_canvas,
    to_pil,
)
from air3d.renderer import Scene, SceneRenderer, open_world


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


# ---- the model's canvas: letterboxed in a world with a frame (CLEVR's 320 x 240)


def _two_halves(size: tuple[int, int]) -> Image.Image:
    """Top half red, bottom half blue."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (0, size[1] // 2, size[0], size[1]))
    return image


def test_a_world_without_a_frame_fills_the_canvas(world) -> None:
    assert Canvas.of(world) == Canvas(world.image_size)
    image = _two_halves((40, 30))
    torch.testing.assert_close(
        to_canvas(image, Canvas.of(world)), to_canvas(image, world.image_size)
    )
    assert to_canvas(image, 16)[:, 0].mean((1,)).tolist() == [1.0, 0.0, 0.0]


def test_a_frame_goes_to_the_centred_rows_with_background_bands() -> None:
    clevr, _ = open_world("clevr")
    canvas = Canvas.of(clevr)
    first, last = clevr.frame_rows
    assert (canvas.size, canvas.rows) == (96, (12, 84)) == (clevr.image_size, (first, last))
    image = to_canvas(_two_halves((320, 240)), canvas)
    assert image.shape == (3, 96, 96)
    torch.testing.assert_close(image[:, first], torch.tensor([1.0, 0, 0])[:, None].expand(3, 96))
    torch.testing.assert_close(image[:, last - 1], torch.tensor([0, 0, 1.0])[:, None].expand(3, 96))
    fill = torch.tensor(band_color(clevr))[:, None, None]
    torch.testing.assert_close(image[:, :first], fill.expand(3, first, 96))
    torch.testing.assert_close(image[:, last:], fill.expand(3, 96 - last, 96))
    # sRGB-like tone: the linear background b is stored as b ** (1 / 2.2)
    stored = tuple(c ** (1 / clevr.tone.gamma) for c in clevr.background)
    assert clevr.tone.gamma == 2.2 and band_color(clevr) == pytest.approx(stored, abs=1e-6)


def test_bands_equal_what_the_renderer_writes_there() -> None:
    clevr, kinds = open_world("clevr")
    small = replace(clevr, image_size=24)
    rendered = SceneRenderer(small, kinds).render_scenes([Scene()])[0]
    loaded = to_canvas(_two_halves((320, 240)), Canvas.of(small))
    first, last = small.frame_rows
    assert (first, last) == (3, 21)
    torch.testing.assert_close(loaded[:, :first], rendered[:, :first], atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded[:, last:], rendered[:, last:], atol=1e-6, rtol=0)


def test_any_image_size_reaches_the_frame_and_jpegs_decode_in_draft(tmp_path: Path) -> None:
    clevr, _ = open_world("clevr")
    canvas = Canvas.of(clevr)
    for size in [(320, 240), (1280, 960), (50, 50)]:
        buffer = io.BytesIO()
        _two_halves(size).save(buffer, format="JPEG", quality=95)
        image = decode_image(buffer.getvalue(), canvas)
        assert image.shape == (3, 96, 96)
        assert image[0, 20].mean() > 0.9 and image[2, 80].mean() > 0.9  # red above, blue below
    path = tmp_path / "frame.png"
    _two_halves((320, 240)).save(path)
    torch.testing.assert_close(read_image(path, canvas), to_canvas(_two_halves((320, 240)), canvas))
