"""POST /render: a scene JSON -> the PNG the renderer draws."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from air3d.images import encode_png
from air3d.renderer import Scene
from air3d.service.deps import get_state
from air3d.service.routes.errors import responses
from air3d.service.schemas import ErrorOut, SceneIn
from air3d.service.state import ServiceState

router = APIRouter(tags=["rendering"])


@router.post(
    "/render",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the scene, image_size pixels square"},
        **responses(401, 413, 422, 503),
        400: {"model": ErrorOut, "description": "the body is not JSON"},
    },
)
async def render_scene(
    scene: SceneIn, state: Annotated[ServiceState, Depends(get_state)]
) -> Response:
    """Draws a scene (what POST /infer returns is valid as it is) with the crisp renderer."""
    predictor = state.predictor
    try:
        parsed = Scene.from_json(scene.model_dump(), predictor.answer_world, predictor.shapes)
    except ValueError as error:  # the message names the field: objects[0].shape: ...
        raise HTTPException(422, str(error)) from None
    image = await asyncio.to_thread(state.render_png, parsed)
    return Response(encode_png(image), media_type="image/png")
