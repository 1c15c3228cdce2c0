"""Error bodies: `{"detail": message}` for every error, validation errors included, and the
responses each route documents in OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from air3d.service.schemas import ErrorOut


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}


DESCRIPTIONS = {
    400: "empty, truncated or corrupt upload, or not an image",
    401: "AIR3D_API_KEY is set and the X-API-Key header is missing or wrong",
    413: "body over AIR3D_MAX_UPLOAD_BYTES, images over AIR3D_MAX_PIXELS, or too many images",
    415: "an image type other than PNG or JPEG",
    422: "a field is missing or invalid; the message names it",
    503: "the service is busy (queue full, too many requests in progress) or the model is "
    "not loaded; see Retry-After",
}


def validation_message(error: RequestValidationError) -> str:
    """FastAPI's list of errors as one line: `objects.0.yaw_deg: Input should be ...; ...`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(error)}, 422)
