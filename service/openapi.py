"""The OpenAPI schema, made exact for the served model and settings.

Pydantic writes what the code knows; the served model knows more: its shape names, its
world's attributes and their values (a clevr model's objects carry color, size and
material), its workspace bounds, its max_objects. Those are added once the model is known
(the schema is built on the first request for it, after the lifespan loaded the model), so
the schema promises exactly what Scene.from_json accepts. The 401 answer is documented only
when AIR3D_API_KEY is set. A server serves one model, so one world (`model.world` in every
answer): to serve another world, run another server (`air3d serve --world NAME`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from air3d.model import Predictor
from air3d.renderer.scene import camera_bounds


def install_openapi(app: FastAPI, predictor: Predictor | None) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        state = getattr(app.state, "service", None)
        model = predictor or (state.predictor if state is not None else None)
        settings = app.state.settings
        _limit_batch(schema, settings.queue_size)
        if settings.api_key is None:
            _drop_response(schema, "401")
        if model is None:  # asked before the model loaded: serve the generic schema, uncached
            return schema
        _describe_world(schema, model)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe_world(schema: dict[str, Any], model: Predictor) -> None:
    components = schema["components"]["schemas"]
    ws = model.world.workspace
    obj = components["ObjectIn"]["properties"]
    obj["shape"]["enum"] = list(model.shapes.names)
    obj["position"]["prefixItems"] = [
        {"type": "number", "minimum": ws.x[0], "maximum": ws.x[1]},
        {"type": "number"},
        {"type": "number", "minimum": ws.z[0], "maximum": ws.z[1]},
    ]
    components["SceneIn"]["properties"]["objects"]["maxItems"] = model.answer_world.max_objects
    (x_low, x_high), (y_low, y_high), (z_low, z_high) = camera_bounds(model.answer_world)
    components["CameraIn"]["properties"]["position"]["prefixItems"] = [
        {"type": "number", "minimum": x_low, "maximum": x_high},
        {"type": "number", "exclusiveMinimum": y_low, "maximum": y_high},
        {"type": "number", "minimum": z_low, "maximum": z_high},
    ]
    components["ObjectOut"]["properties"]["shape"]["enum"] = list(model.shapes.names)
    _describe_attributes(components, model.shapes.factors[1:])


def _describe_attributes(
    components: dict[str, Any], attributes: tuple[tuple[str, tuple[str, ...]], ...]
) -> None:
    """Each attribute of the world a required string with its values as enum, in and out;
    out also q's probabilities of them (`attribute_probs`)."""
    if not attributes:
        return
    for name in ("ObjectIn", "ObjectOut"):
        schema = components[name]
        for attribute, values in attributes:
            schema["properties"][attribute] = {
                "type": "string",
                "enum": list(values),
                "title": attribute.capitalize(),
                "description": f"the object's {attribute}",
            }
            schema["required"].append(attribute)
    out = components["ObjectOut"]
    out["properties"]["attribute_probs"] = {
        "type": "object",
        "description": "q's probability of each value of each attribute",
        "properties": {
            attribute: {
                "type": "object",
                "properties": {
                    value: {"type": "number", "minimum": 0, "maximum": 1} for value in values
                },
            }
            for attribute, values in attributes
        },
    }
    out["required"].append("attribute_probs")


def _limit_batch(schema: dict[str, Any], queue_size: int) -> None:
    images = schema["components"]["schemas"]["Body_infer_batch_infer_batch_post"]
    images["properties"]["images"].update(minItems=1, maxItems=queue_size)


def _drop_response(schema: dict[str, Any], code: str) -> None:
    for path in schema["paths"].values():
        for operation in path.values():
            operation["responses"].pop(code, None)
