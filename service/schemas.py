"""Request and response bodies, one model per direction (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from air3d.model.predictor import POSITION_TOLERANCE

MAX_YAW_DEG = 36_000.0  # |yaw| bound; far beyond it the renderer's float32 angle overflowed (a 500)

# Strict: a JSON `false` is not the number 0, nor "1" a number. The served model's shape
# names, attributes (color, size, material and their values, in a world that has them),
# workspace bounds and max_objects are added to the OpenAPI schema (openapi.py).


class ObjectIn(BaseModel):
    """One object of a scene to render; in a world with attributes also its value of each
    (e.g. "color": "red"); extra keys (presence, shape_probs, pixel) are ignored."""

    model_config = ConfigDict(extra="allow", strict=True)

    shape: str = Field(description="a shape of the library (GET /shapes)", examples=["cube"])
    position: list[float] = Field(
        min_length=3, max_length=3, description="[x, y, z] of the centre, x and z inside the "
        "workspace; y is replaced by the shape's resting height", examples=[[0.3, 0.3, -0.2]],
    )  # fmt: skip
    yaw_deg: float = Field(
        ge=-MAX_YAW_DEG, le=MAX_YAW_DEG, examples=[30],
        description="rotation about the vertical axis, degrees (any angle; at most 100 turns "
        "either way)",
    )  # fmt: skip


class CameraIn(BaseModel):
    """The camera a scene is seen from (a world with camera jitter gives each its own)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    position: list[float] = Field(
        min_length=3, max_length=3, examples=[[7.5, 5.3, 6.5]],
        description="[x, y, z] of the eye, y > 0 (above the ground), aimed at the world "
        "camera's look-at with its up and field of view",
    )  # fmt: skip


class SceneIn(BaseModel):
    """A scene: exactly what POST /infer returns (extra keys are ignored)."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        json_schema_extra={
            "examples": [{"objects": [{"shape": "cube", "position": [0.3, 0.3, -0.2],
                                       "yaw_deg": 30.0}]}]
        },
    )  # fmt: skip

    objects: list[ObjectIn] = Field(description="at most max_objects (GET /shapes)")
    camera: CameraIn | None = Field(default=None, description="absent: the world's camera")


class ObjectOut(BaseModel):
    """An inferred object. In a world with attributes it also names its value of each
    (`color`, `size`, `material`: the served world's, listed in this schema) and carries
    `attribute_probs`, q's probability of each value of each."""

    model_config = ConfigDict(extra="allow")  # the world's attributes (openapi.py)

    shape: str
    position: list[float] = Field(
        min_length=3, max_length=3, description="[x, y, z] world coordinates of the centre"
    )
    yaw_deg: float = Field(
        ge=0, lt=360, description="degrees in [0, 360), counter-clockwise seen from above"
    )
    presence: float = Field(ge=0, le=1, description="q's probability that this object is there")
    confidence: float = Field(
        ge=0, le=1,
        description="the probability that the object is there, of the kind answered, and "
        f"with its centre within {POSITION_TOLERANCE} world units of the truth: presence, "
        "times the kind's probability, times the share of position_sd's Gaussian within "
        "that distance (where position_sd is given); answers rank by it",
    )  # fmt: skip
    position_sd: float | None = Field(
        default=None, ge=0,
        description="how far the centre may be off, RMS over the ground plane (world "
        "units), for want of the true camera: given where the model fits each image's camera "
        "(a world whose camera jitters, CLEVR's)",
    )  # fmt: skip
    shape_probs: dict[str, float] = Field(description="q's probability of each shape")
    pixel: list[float] = Field(
        min_length=2, max_length=2,
        description="[column, row] of the centre in the model's input image (image_size "
        "pixels square); in the upload: column * width / image_size, (row - first) * "
        "height / (last - first) with [first, last) = model.frame_rows",
    )  # fmt: skip


class ModelOut(BaseModel):
    name: str
    checkpoint_hash: str
    image_size: int = Field(description="side of the square image the model sees")
    world: str = Field(description="the world the model was trained in; a server serves one")
    frame_rows: list[int] = Field(
        min_length=2, max_length=2,
        description="[first, last): the rows of the model's square image that hold the "
        "upload; a world with a non-square frame (CLEVR's 320 x 240) letterboxes it there, "
        "the other rows are the world's background; [0, image_size] otherwise",
    )  # fmt: skip


class TimingOut(BaseModel):
    decode: float = Field(description="decoding and resizing the upload, ms")
    infer: float = Field(description="waiting for a batch plus the forward pass, ms")
    total: float = Field(description="the whole request, ms")


class FitOut(BaseModel):
    """How well the answer explains the image (model/fit.py), after any refinement."""

    score: float | None = Field(
        ge=0, le=1,
        description="fraction of valid scenes (drawn from the prior at calibration) whose "
        "answer fits worse: near 0, the image is not explained; null when the checkpoint "
        "is not calibrated (`air3d calibrate`)",
    )  # fmt: skip
    log_likelihood_per_pixel: float = Field(
        description="mean log N(x; render(answer), sigma^2) per pixel and channel, the image "
        "through the tone curve that fits best (higher is better; a perfect fit is "
        "-log(sigma) - log(2 pi) / 2)"
    )
    not_a_scene: bool = Field(
        description="the image is outside what the world can explain (fit below the "
        "calibrated threshold); always false when uncalibrated"
    )
    calibrated: bool = Field(description="whether `score` and `not_a_scene` are calibrated")


class InferenceOut(BaseModel):
    """In a world with camera jitter an answer also carries q's estimate of its camera,
    "camera": {"position": [x, y, z]} (as SceneIn's); absent: the world's camera."""

    model_config = ConfigDict(extra="allow")  # "camera", only where the world's camera moves

    objects: list[ObjectOut]
    count: int = Field(ge=0)
    fit: FitOut


class InferOut(InferenceOut):
    model: ModelOut
    timing_ms: TimingOut


class InferBatchOut(BaseModel):
    results: list[InferenceOut] = Field(description="one per uploaded image, in upload order")
    model: ModelOut
    timing_ms: TimingOut


class ShapeOut(BaseModel):
    """A kind of object: a shape, with one value of each of the world's attributes."""

    name: str
    mesh: str
    height: float
    symmetry: int | None = Field(description="rotational symmetry order; null: any angle")
    color: list[float]
    attributes: dict[str, str] = Field(
        description="the kind's value of each of the world's attributes, e.g. "
        '{"color": "red", "size": "large", "material": "metal"}; {} in a world without'
    )


class ShapesOut(BaseModel):
    shapes: list[ShapeOut]
    world: dict[str, Any] = Field(description="the scene config the model was trained on")


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    model: ModelOut | None = None


class ErrorOut(BaseModel):
    detail: str = Field(description="what was wrong, for a person to read")
