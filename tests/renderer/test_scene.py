"""The scene contract: validation of scene JSON, JSON and tensor round trips."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from air3d.renderer import Scene, SceneBatch, SceneObject, ShapeLibrary, World

KNOWN = "known: cube, sphere, cylinder, cone"
WS = r"x in \[-1\.2, 1\.2\], z in \[-1\.2, 1\.2\]"


def _scene(**changes: Any) -> dict[str, Any]:
    """A valid one-object scene JSON with the given keys of its object replaced."""
    obj: dict[str, Any] = {"shape": "cube", "position": [0.1, 0.3, -0.2], "yaw_deg": 30.0}
    obj.update(changes)
    return {"objects": [obj]}


def _without(key: str) -> dict[str, Any]:
    data = _scene()
    del data["objects"][0][key]
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_scene(shape="cone2"), rf"objects\[0\]\.shape: unknown shape 'cone2'; {KNOWN}"),
        (_scene(shape=3), rf"objects\[0\]\.shape: unknown shape 3; {KNOWN}"),
        (_scene(position=[math.nan, 0.3, 0.0]), r"objects\[0\]\.position\[0\]: must be finite"),
        (_scene(position=[0.0, 0.3, math.inf]), r"objects\[0\]\.position\[2\]: must be finite"),
        (_scene(position=[0.0, -math.inf, 0.0]), r"objects\[0\]\.position\[1\]: must be finite"),
        (_scene(yaw_deg=math.nan), r"objects\[0\]\.yaw_deg: must be finite, got nan"),
        (_scene(yaw_deg=-math.inf), r"objects\[0\]\.yaw_deg: must be finite, got -inf"),
        (_scene(position=[1.3, 0.3, 0.0]), rf"objects\[0\]\.position: \(x=1\.3, z=0\) .*{WS}"),
        (
            _scene(position=[0.0, 0.3, -5.0]),
            rf"objects\[0\]\.position: \(x=0, z=-5\) is outside the workspace {WS}",
        ),
        (_scene(position="0,0,0"), r"objects\[0\]\.position: must be a list of 3 numbers"),
        (_scene(position=[0.0, 0.3]), r"objects\[0\]\.position: must be a list of 3 numbers"),
        (_scene(position=[0.0, "0.3", 0.0]), r"objects\[0\]\.position\[1\]: must be a number"),
        (_scene(position=[True, 0.3, 0.0]), r"objects\[0\]\.position\[0\]: must be a number"),
        (_scene(yaw_deg="30"), r"objects\[0\]\.yaw_deg: must be a number, got '30'"),
        (_scene(yaw_deg=None), r"objects\[0\]\.yaw_deg: must be a number, got None"),
        (_without("shape"), r"objects\[0\]\.shape: missing"),
        (_without("position"), r"objects\[0\]\.position: missing"),
        (_without("yaw_deg"), r"objects\[0\]\.yaw_deg: missing"),
        ({"objects": ["cube"]}, r"objects\[0\]: must be a JSON object with shape, position, yaw"),
        ({"objects": {"shape": "cube"}}, r'scene must be a JSON object with a list "objects"'),
        ({}, r'scene must be a JSON object with a list "objects"'),
        ([], r'scene must be a JSON object with a list "objects"'),
        (None, r'scene must be a JSON object with a list "objects"'),
    ],
)
def test_invalid_scene_is_refused_with_the_field_named(
    data: Any, message: str, world: World, shapes: ShapeLibrary
) -> None:
    with pytest.raises(ValueError, match=message):
        Scene.from_json(data, world, shapes)


def test_too_many_objects(world: World, shapes: ShapeLibrary) -> None:
    obj = {"shape": "sphere", "position": [0.0, 0.0, 0.0], "yaw_deg": 0.0}
    Scene.from_json({"objects": [obj] * world.max_objects}, world, shapes)
    with pytest.raises(ValueError, match=r"objects: 4 objects; at most max_objects=3"):
        Scene.from_json({"objects": [obj] * (world.max_objects + 1)}, world, shapes)


def test_second_object_is_named_in_the_message(world: World, shapes: ShapeLibrary) -> None:
    good = {"shape": "cube", "position": [0.0, 0.3, 0.0], "yaw_deg": 0.0}
    bad = {"shape": "pyramid", "position": [0.0, 0.3, 0.0], "yaw_deg": 0.0}
    with pytest.raises(ValueError, match=r"objects\[1\]\.shape: unknown shape 'pyramid'"):
        Scene.from_json({"objects": [good, bad]}, world, shapes)


def test_nan_parsed_from_json_text_is_refused(world: World, shapes: ShapeLibrary) -> None:
    text = '{"objects": [{"shape": "cube", "position": [NaN, 0, 0], "yaw_deg": 0}]}'
    with pytest.raises(ValueError, match=r"position\[0\]: must be finite"):
        Scene.from_json(json.loads(text), world, shapes)


def test_workspace_edges_are_inside(world: World, shapes: ShapeLibrary) -> None:
    (x0, x1), (z0, z1) = world.workspace.x, world.workspace.z
    data = {
        "objects": [
            {"shape": "cube", "position": [x0, 0.0, z0], "yaw_deg": 0.0},
            {"shape": "cube", "position": [x1, 0.0, z1], "yaw_deg": 0.0},
        ]
    }
    assert len(Scene.from_json(data, world, shapes).objects) == 2


def test_resting_height_and_extra_keys(world: World, shapes: ShapeLibrary) -> None:
    """y is replaced by the shape's resting height; the service's extra keys are ignored."""
    data = {
        "count": 1,
        "objects": [
            {
                "shape": "sphere",
                "position": [0.5, 9.0, -0.5],
                "yaw_deg": 12,
                "presence": 0.97,
                "shape_probs": {"sphere": 0.9, "cube": 0.1},
            }
        ],
    }
    scene = Scene.from_json(data, world, shapes)
    assert scene == Scene((SceneObject("sphere", (0.5, 0.35, -0.5), 12.0),))
    assert isinstance(scene.objects[0].yaw_deg, float)


def test_json_round_trip(world: World, shapes: ShapeLibrary) -> None:
    scene = Scene(
        (
            SceneObject("cube", (-0.8, 0.3, -0.6), 30.0),
            SceneObject("sphere", (0.8, 0.35, -0.5), 359.5),
            SceneObject("cone", (0.0, 0.3, 1.2), -45.0),
        )
    )
    text = json.dumps(scene.to_json())
    assert json.loads(text)["objects"][0] == {
        "shape": "cube",
        "position": [-0.8, 0.3, -0.6],
        "yaw_deg": 30.0,
    }
    assert Scene.from_json(json.loads(text), world, shapes) == scene
    assert Scene.from_json(Scene().to_json(), world, shapes) == Scene()


def test_scene_batch_layout(shapes: ShapeLibrary) -> None:
    scenes = [
        Scene(),
        Scene(
            (
                SceneObject("cone", (0.5, 0.3, -0.25), 90.0),
                SceneObject("cube", (-1.0, 0.3, 1.0), 180.0),
            )
        ),
    ]
    batch = SceneBatch.from_scenes(scenes, shapes)
    assert len(batch) == 2
    assert batch.shape.tolist() == [[0, 0], [3, 0]]
    assert batch.present.tolist() == [[False, False], [True, True]]
    torch.testing.assert_close(batch.xz[1], torch.tensor([[0.5, -0.25], [-1.0, 1.0]]))
    torch.testing.assert_close(batch.yaw[1], torch.tensor([math.pi / 2, math.pi]))
    assert (batch.xz[0] == 0).all() and (batch.yaw[0] == 0).all()
    assert SceneBatch.from_scenes([Scene()], shapes).present.shape == (1, 1)


def test_scene_batch_round_trip(shapes: ShapeLibrary) -> None:
    scenes = [
        Scene((SceneObject("cube", (0.25, 0.3, -0.5), 30.0),)),
        Scene(),
        Scene(
            (
                SceneObject("sphere", (1.0, 0.35, 1.0), 0.0),
                SceneObject("cylinder", (-1.2, 0.3, 0.0), 359.0),
                SceneObject("cone", (0.0, 0.3, -1.2), 370.0),  # comes back as 10
            )
        ),
    ]
    back = SceneBatch.from_scenes(scenes, shapes, slots=5).to_scenes(shapes)
    assert len(back) == 3
    for original, returned in zip(scenes, back, strict=True):
        assert [o.shape for o in returned.objects] == [o.shape for o in original.objects]
        for a, b in zip(original.objects, returned.objects, strict=True):
            assert b.position == pytest.approx(a.position, abs=1e-6)
            assert b.yaw_deg == pytest.approx(a.yaw_deg % 360, abs=1e-4)


def test_to_scenes_wraps_yaw_into_0_360(shapes: ShapeLibrary) -> None:
    batch = SceneBatch.from_scenes([Scene((SceneObject("cube", (0.0, 0.3, 0.0), 0.0),))], shapes)
    for radians, degrees in [(-1e-20, 0.0), (-math.pi / 2, 270.0), (5 * math.pi, 180.0)]:
        batch.yaw[0, 0] = radians
        yaw = batch.to_scenes(shapes)[0].objects[0].yaw_deg
        assert 0.0 <= yaw < 360.0
        assert yaw == pytest.approx(degrees, abs=1e-4)


def test_scene_batch_to_device_keeps_values(shapes: ShapeLibrary) -> None:
    batch = SceneBatch.from_scenes([Scene((SceneObject("cube", (0.1, 0.3, 0.2), 5.0),))], shapes)
    moved = batch.to("cpu")
    for name in ("shape", "present", "xz", "yaw"):
        assert torch.equal(getattr(moved, name), getattr(batch, name))


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ([1.0, 2.0, 3.0], r'camera: must be a JSON object \{"position": \[x, y, z\]\}'),
        ({"eye": [1.0, 2.0, 3.0]}, r'camera: must be a JSON object \{"position"'),
        ({"position": [1.0, 2.0]}, r"camera\.position: must be a list of 3 numbers"),
        ({"position": [1.0, math.nan, 3.0]}, r"camera\.position\[1\]: must be finite"),
        ({"position": [1.0, "2", 3.0]}, r"camera\.position\[1\]: must be a number"),
        ({"position": [1.0, -0.5, 3.0]}, r"camera\.position\[1\]: -0\.5 is outside \(0\.1, 10\]"),
        ({"position": [0.0, 0.1, 0.1]}, r"camera\.position\[1\]: 0\.1 is outside \(0\.1, 10\]"),
        ({"position": [1e200, 1.0, 0.1]}, r"camera\.position\[0\]: 1e\+200 is outside \[-10, 10\]"),
    ],
)
def test_invalid_camera_is_refused_with_the_field_named(
    world: World, shapes: ShapeLibrary, camera: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Scene.from_json({**_scene(), "camera": camera}, world, shapes)


def test_a_scene_camera_round_trips_through_json_and_tensors(
    world: World, shapes: ShapeLibrary
) -> None:
    data = {**_scene(), "camera": {"position": [1.5, 2.5, 3.0]}}
    scene = Scene.from_json(data, world, shapes)
    assert scene.camera == (1.5, 2.5, 3.0)
    assert Scene.from_json(json.loads(json.dumps(scene.to_json())), world, shapes) == scene
    assert "camera" not in Scene.from_json(_scene(), world, shapes).to_json()  # absent: absent
    plain = Scene(scene.objects)
    with pytest.raises(ValueError, match="some scenes carry a camera and others do not"):
        SceneBatch.from_scenes([scene, plain], shapes)
    batch = SceneBatch.from_scenes([scene, plain], shapes, eye=world.camera.position)
    expected = torch.tensor([[1.5, 2.5, 3.0], list(world.camera.position)])
    torch.testing.assert_close(batch.eye, expected)
    torch.testing.assert_close(batch[torch.tensor([1])].eye, expected[1:])
    assert batch.to_scenes(shapes)[0].camera == pytest.approx(scene.camera)
    assert torch.equal(batch.repeat_scenes(2).eye[:2], batch.eye[:1].expand(2, 3))
    assert SceneBatch.from_scenes([plain], shapes).eye is None
