"""POST /infer and POST /infer/batch: uploaded images -> their objects.

Admission (admission.py) has already checked that there is room before the body was read.
Here each upload's header is probed first and the request's pixel budget checked, so no
pixel is decoded for a request that will be refused; decoding then runs in the bounded
decode pool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import torch
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile
from PIL import Image

from air3d.images import ImageError, ImageTooLargeError, UnsupportedImageError
from air3d.model.refine import MAX_REFINE_STEPS
from air3d.service.admission import RETRY_AFTER_S, TICKET
from air3d.service.batching import QueueFullError
from air3d.service.decoding import over_budget, probe
from air3d.service.deps import get_state
from air3d.service.routes.errors import responses
from air3d.service.schemas import InferBatchOut, InferOut
from air3d.service.state import ServiceState

router = APIRouter(tags=["inference"])
ERRORS = responses(400, 401, 413, 415, 422, 503)
RefineQuery = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_REFINE_STEPS,
        description="render-and-compare steps after q's answer (0: plain AIR; each costs time)",
    ),
]


@router.post("/infer", response_model=InferOut, responses=ERRORS)
async def infer_image(
    request: Request,
    image: Annotated[UploadFile, File(description="a PNG or JPEG, at most AIR3D_MAX_PIXELS")],
    state: Annotated[ServiceState, Depends(get_state)],
    refine: RefineQuery = 0,
) -> dict:
    """The objects in one image (resized to the model's square input, aspect not kept)."""
    started = time.perf_counter()
    [tensor] = await _decode_all(state, [("image", image)])
    decoded = time.perf_counter()
    [result] = await _infer(request, state, [tensor], refine)
    return {
        **state.inference_json(result),
        "model": state.model_json(),
        "timing_ms": _timing(started, decoded),
    }


@router.post("/infer/batch", response_model=InferBatchOut, responses=ERRORS)
async def infer_batch(
    request: Request,
    images: Annotated[
        list[UploadFile],
        File(description="PNG or JPEG files, at most AIR3D_MAX_PIXELS in all"),
    ],
    state: Annotated[ServiceState, Depends(get_state)],
    refine: RefineQuery = 0,
) -> dict:
    """The objects in each image, one result per image in upload order."""
    started = time.perf_counter()
    limit = state.settings.queue_size
    if len(images) > limit:
        raise HTTPException(413, f"images: {len(images)} files; at most {limit} per request")
    fields = [(f"images[{i}]", upload) for i, upload in enumerate(images)]
    tensors = await _decode_all(state, fields)
    decoded = time.perf_counter()
    results = await _infer(request, state, tensors, refine)
    return {
        "results": [state.inference_json(result) for result in results],
        "model": state.model_json(),
        "timing_ms": _timing(started, decoded),
    }


async def _decode_all(
    state: ServiceState, uploads: list[tuple[str, UploadFile]]
) -> list[torch.Tensor]:
    """Probes every upload, checks the request's pixel budget, then decodes them one by one
    (a request holds at most one decode thread: the pool is shared fairly)."""
    budget = state.settings.max_pixels
    probed: list[tuple[str, Image.Image]] = []
    for field, upload in uploads:
        data = await upload.read()  # the body limit (limits.py) bounds it
        try:
            probed.append((field, probe(data, budget)))
        except ImageError as error:
            raise _http_error(field, error) from None
    for field, image in probed:
        if image.width * image.height > budget:
            size = f"{image.width}x{image.height} = {image.width * image.height}"
            raise HTTPException(413, f"{field}: {size} pixels, {over_budget(budget)}")
    pixels = sum(image.width * image.height for _, image in probed)
    if pixels > budget:
        raise HTTPException(413, f"images: {pixels} pixels in all, {over_budget(budget)}")
    tensors = []
    for field, image in probed:
        try:
            tensors.append(await state.decode(image))
        except ImageError as error:
            raise _http_error(field, error) from None
    return tensors


def _http_error(field: str, error: ImageError) -> HTTPException:
    if isinstance(error, ImageTooLargeError):
        return HTTPException(413, f"{field}: {error}")
    if isinstance(error, UnsupportedImageError):
        return HTTPException(415, f"{field}: {error}")
    return HTTPException(400, f"{field}: {error}")


async def _infer(
    request: Request, state: ServiceState, tensors: list[torch.Tensor], refine: int = 0
) -> list:
    state.admission.arrive(request.scope.get(TICKET))  # the batcher need not wait for it now
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
