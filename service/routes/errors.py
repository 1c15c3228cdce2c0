"""The error responses the routes document in OpenAPI (bodies: `{"detail": message}`)."""

from __future__ import annotations

from typing import Any

from air3d.service.schemas import ErrorOut


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}


DESCRIPTIONS = {
    400: "empty, truncated or corrupt upload, or not an image",
    401: "AIR3D_API_KEY is set and the X-API-Key header is missing or wrong",
    413: "body over AIR3D_MAX_UPLOAD_BYTES, image over the pixel limit, or too many images",
    415: "an image type other than PNG or JPEG",
    422: "a field is missing or invalid; the message names it",
    503: "the inference queue is full or the model is not loaded; see Retry-After",
}
