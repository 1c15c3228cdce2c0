"""POST /infer and POST /infer/batch: uploaded images -> their objects."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import torch
from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile

from air3d.images import ImageError, ImageTooLargeError, UnsupportedImageError, decode_image
from air3d.model.refine import MAX_REFINE_STEPS
from air3d.service.batching import QueueFullError
from air3d.service.deps import get_state, require_api_key
from air3d.service.routes.errors import responses
from air3d.service.schemas import InferBatchOut, InferOut
from air3d.service.state import ServiceState

router = APIRouter(tags=["inference"], dependencies=[Depends(require_api_key)])
RETRY_AFTER_S = 1
RefineQuery = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_REFINE_STEPS,
        description="render-and-compare steps after q's answer (0: plain AIR; each costs time)",
    ),
]


@router.post("/infer", response_model=InferOut, responses=responses(400, 401, 413, 415, 503))
async def infer_image(
    image: Annotated[UploadFile, File(description="a PNG or JPEG, any size")],
    state: Annotated[ServiceState, Depends(get_state)],
    refine: RefineQuery = 0,
) -> dict:
    """The objects in one image (resized to the model's square input, aspect not kept)."""
    started = time.perf_counter()
    tensor = await _decode(image, "image", state)
    decoded = time.perf_counter()
    [result] = await _infer(state, [tensor], refine)
    return {
        **state.inference_json(result),
        "model": state.model_json(),
        "timing_ms": _timing(started, decoded),
    }


@router.post(
    "/infer/batch", response_model=InferBatchOut, responses=responses(400, 401, 413, 415, 503)
)
async def infer_batch(
    images: Annotated[list[UploadFile], File(description="PNG or JPEG files, any size")],
    state: Annotated[ServiceState, Depends(get_state)],
    refine: RefineQuery = 0,
) -> dict:
    """The objects in each image, one result per image in upload order."""
    started = time.perf_counter()
    limit = state.settings.queue_size
    if len(images) > limit:
        raise HTTPException(413, f"images: {len(images)} files; at most {limit} per request")
    tensors = [await _decode(upload, f"images[{i}]", state) for i, upload in enumerate(images)]
    decoded = time.perf_counter()
    results = await _infer(state, tensors, refine)
    return {
        "results": [state.inference_json(result) for result in results],
        "model": state.model_json(),
        "timing_ms": _timing(started, decoded),
    }


async def _decode(upload: UploadFile, field: str, state: ServiceState) -> torch.Tensor:
    """Reads an upload (at most the body limit) and decodes it; HTTP errors name the field."""
    limit = state.settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{field}: file is over the limit of {limit} bytes")
    try:
        return await asyncio.to_thread(decode_image, data, state.predictor.image_size)
    except ImageTooLargeError as error:
        raise HTTPException(413, f"{field}: {error}") from None
    except UnsupportedImageError as error:
        raise HTTPException(415, f"{field}: {error}") from None
    except ImageError as error:
        raise HTTPException(400, f"{field}: {error}") from None


async def _infer(state: ServiceState, tensors: list[torch.Tensor], refine: int = 0) -> list:
    if refine:  # refinement runs per request, beside the batcher (its answers depend on K)
        return await asyncio.to_thread(state.predictor.infer, torch.stack(tensors), refine)
    try:
        return await state.batcher.submit(tensors)
    except QueueFullError as error:
        raise HTTPException(503, str(error), headers={"Retry-After": str(RETRY_AFTER_S)}) from None


def _timing(started: float, decoded: float) -> dict[str, float]:
    now = time.perf_counter()
    return {
        "decode": round((decoded - started) * 1000, 3),
        "infer": round((now - decoded) * 1000, 3),
        "total": round((now - started) * 1000, 3),
    }
