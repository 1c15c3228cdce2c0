"""GET /shapes: the kinds of object (each shape with each combination of the world's
attribute values) and the scene config the model was trained on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from air3d.service.deps import get_state
from air3d.service.routes.errors import responses
from air3d.service.schemas import ShapesOut
from air3d.service.state import ServiceState

router = APIRouter(tags=["model"])


@router.get("/shapes", response_model=ShapesOut, responses=responses(401, 503))
def list_shapes(state: Annotated[ServiceState, Depends(get_state)]) -> dict:
    predictor = state.predictor
    shapes = [
        {**spec, "attributes": dict(spec["attributes"])}
        for spec in predictor.shapes.to_dict()["shapes"]
    ]
    return {"shapes": shapes, "world": predictor.world.to_dict()}
